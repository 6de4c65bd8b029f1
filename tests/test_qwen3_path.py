"""The `qwen3` code path on every CI run: the CLI and the notebooks with RAG_MODELS=qwen3, offline.

The models are the hub replicas of helpers.standins (Qwen3-Embedding-0.6B and Qwen3-Reranker-0.6B file
for file, 2 random layers), so everything but the weights is what a learner with internet runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from notebook_runner import course_notebooks, run_notebooks
from procs import child_env

from helpers.config import DATA_DIR, ROOT
from helpers.models import STAND_IN_LABEL
from helpers.standins import build_replica

QUESTION = "How is data stored in milvus?"
# Reranking every labelled question through a 1024-wide model takes minutes on two CPU cores;
# the first few exercise the same code.
EVAL_QUESTIONS = 3


@pytest.fixture(scope="module")
def corpus(base_settings) -> str:
    """The Milvus FAQ when the docs archive is at hand (CI), else the project's sample corpus."""
    return "milvus-faq" if base_settings.docs_zip and Path(base_settings.docs_zip).is_file() else "sample"


@pytest.fixture(scope="module")
def replicas() -> dict[str, str]:
    return {kind: str(build_replica(kind)) for kind in ("embedding", "reranker")}


@pytest.fixture(scope="module")
def qwen3_env(replicas, tmp_path_factory) -> dict[str, str]:
    """A child environment with the qwen3 kit on the replicas, no LLM and a private Milvus Lite file."""
    lite = tmp_path_factory.mktemp("qwen3") / "qwen3.db"
    return child_env(
        RAG_MODELS="qwen3",
        RAG_EMBEDDING_MODEL=replicas["embedding"],
        RAG_RERANKER_MODEL=replicas["reranker"],
        HF_HUB_OFFLINE="1",
        MILVUS_URI="",
        RAG_LITE_FILE=str(lite),
        MILVUS_COLLECTION="milvus_faq",
    )


def _cli(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "helpers", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (
        f"python -m helpers {' '.join(args)} exited {done.returncode}:\n{done.stderr}"
    )
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def ingested(qwen3_env, corpus) -> dict:
    return _cli(qwen3_env, "ingest", "--corpus", corpus, "--json")


def test_ingest_with_the_qwen3_kit(ingested, replicas, corpus):
    assert ingested["corpus"] == corpus and ingested["rows"] > 0
    assert ingested["models"]["kit"] == "qwen3"
    assert ingested["models"]["embedding"] == replicas["embedding"]


def test_ask_reranks_with_the_qwen3_reranker(ingested, qwen3_env, replicas):
    result = _cli(qwen3_env, "ask", QUESTION, "--json", "--reranker", "qwen3")
    assert result["reranker"] == replicas["reranker"]
    assert result["sources"] and all(isinstance(s["rerank_score"], float) for s in result["sources"])
    assert result["answer_backend"].startswith("extractive")  # no LLM endpoint in tests


def test_eval_reports_the_reranked_strategies(qwen3_env, replicas, corpus, tmp_path):
    source = (
        DATA_DIR
        / "eval"
        / ("milvus_faq_questions.jsonl" if corpus == "milvus-faq" else "sample_questions.jsonl")
    )
    queries = tmp_path / source.name
    queries.write_text("\n".join(source.read_text(encoding="utf-8").splitlines()[:EVAL_QUESTIONS]) + "\n")
    strategies = ("dense", "rerank", "hybrid+rerank")
    report = _cli(
        qwen3_env,
        "eval",
        "--queries",
        str(queries),
        "--corpus",
        corpus,
        "--strategies",
        ",".join(strategies),
        "--json",
    )
    assert set(report["strategies"]) == set(strategies) and report["n_queries"] >= 1
    assert report["models"]["kit"] == "qwen3" and report["models"]["reranker"] == replicas["reranker"]
    for name in ("rerank", "hybrid+rerank"):
        entry = report["strategies"][name]
        assert entry["reranker"] == replicas["reranker"] and entry["reranker"] != STAND_IN_LABEL
        assert 0 <= entry["mrr@10"] <= 1


def test_every_notebook_runs_with_the_qwen3_replicas(qwen3_env, archive_zip):
    """Every cell of every notebook and solution runs (outputs are not compared); needs the docs archive."""
    failures = run_notebooks(course_notebooks(), qwen3_env)
    assert not failures, "\n\n".join(str(f) for f in failures)
