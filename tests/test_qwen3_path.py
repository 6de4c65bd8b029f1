"""The `qwen3` code path on every CI run: the CLI and the notebooks with RAG_MODELS=qwen3, offline.

The models are the hub replicas of tests/qwen3_replicas.py (Qwen3-Embedding-0.6B and Qwen3-Reranker-0.6B file
for file, 1 random layer), so everything but the weights is what a learner with internet runs. The docs
archive is kept out of reach, so the same runs cover a learner without it: the sample corpus (strict nbval
covers the offline kit on the FAQ).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from notebook_runner import course_notebooks, run_notebook
from procs import child_env
from qwen3_replicas import build_replica

from helpers.config import DATA_DIR, ROOT
from helpers.setup import STAND_IN_LABEL

QUESTION = "How is data stored in milvus?"
# Reranking every labelled question through a 1024-wide model takes minutes on two CPU cores;
# the first few exercise the same code.
EVAL_QUESTIONS = 3


@pytest.fixture(scope="module")
def replicas(base_settings) -> dict[str, str]:
    return {kind: str(build_replica(kind, base_settings.cache_dir)) for kind in ("embedding", "reranker")}


@pytest.fixture(scope="module")
def qwen3_env(replicas, tmp_path_factory) -> dict[str, str]:
    """The qwen3 kit on the replicas, no LLM, a private Milvus Lite file, and no docs archive to be had."""
    home = tmp_path_factory.mktemp("qwen3")
    return child_env(
        RAG_MODELS="qwen3",
        RAG_EMBEDDING_MODEL=replicas["embedding"],
        RAG_RERANKER_MODEL=replicas["reranker"],
        HF_HUB_OFFLINE="1",
        MILVUS_URI="",
        RAG_LITE_FILE=str(home / "qwen3.db"),
        MILVUS_COLLECTION="milvus_faq",
        MILVUS_DOCS_ZIP="",
        MILVUS_DOCS_URL="http://127.0.0.1:9/milvus_docs_2.4.x_en.zip",  # refused at once, never the internet
        RAG_CACHE_DIR=str(home / "cache"),  # no cached archive either
        OPENAI_API_KEY="",
        OPENAI_BASE_URL="",
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
def ingested(qwen3_env) -> dict:
    return _cli(qwen3_env, "ingest", "--json")


def test_ingest_with_the_qwen3_kit(ingested, replicas):
    assert ingested["corpus"] == "sample" and ingested["rows"] > 0  # the archive cannot be had
    assert ingested["models"]["kit"] == "qwen3"
    assert ingested["models"]["embedding"] == replicas["embedding"]


def test_ask_reranks_with_the_qwen3_reranker(ingested, qwen3_env, replicas):
    result = _cli(qwen3_env, "ask", QUESTION, "--json", "--reranker", "qwen3")
    assert result["reranker"] == replicas["reranker"]
    assert result["sources"] and all(isinstance(s["rerank_score"], float) for s in result["sources"])
    assert result["answer_backend"].startswith("extractive")  # no LLM endpoint in tests


def test_eval_reports_the_reranked_strategies(qwen3_env, replicas, tmp_path):
    source = DATA_DIR / "eval" / "sample_questions.jsonl"
    queries = tmp_path / source.name
    queries.write_text("\n".join(source.read_text(encoding="utf-8").splitlines()[:EVAL_QUESTIONS]) + "\n")
    strategies = ("dense", "rerank", "hybrid+rerank")
    report = _cli(
        qwen3_env,
        "eval",
        "--queries",
        str(queries),
        "--corpus",
        "sample",
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


@pytest.mark.parametrize("notebook", course_notebooks(), ids=lambda path: path.stem)
def test_every_notebook_runs_with_the_qwen3_replicas_and_no_archive(qwen3_env, notebook):
    """Every cell of every notebook and solution runs, on the sample corpus (outputs are not compared)."""
    failure = run_notebook(notebook, qwen3_env)
    assert failure is None, str(failure)
