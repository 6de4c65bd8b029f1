"""The CLI contract: `python -m helpers ingest|ask`, JSON shapes and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from openai_stub import OpenAIStub

from helpers.__main__ import run

ASK_KEYS = {
    "question",
    "answer",
    "answer_backend",
    "retrieval",
    "reranker",
    "sources",
    "models",
    "timings_ms",
}
SOURCE_KEYS = {"id", "title", "source", "text", "score", "rerank_score"}


@pytest.fixture
def cli_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MILVUS_URI", str(tmp_path / "cli.db"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return tmp_path


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_ingest_json(cli_env, capsys):
    assert run(["ingest", "--corpus", "sample", "--json"]) == 0
    report = _json(capsys)
    assert {"collection", "rows", "corpus", "chunker", "models"} <= report.keys()
    assert report["corpus"] == "sample" and report["chunker"] == "markdown" and report["rows"] >= 30
    assert report["models"]["kit"] == "offline"


def test_ingest_naive_chunker_and_rebuild(cli_env, capsys):
    assert run(["ingest", "--corpus", "sample", "--chunker", "naive", "--rebuild", "--json"]) == 0
    assert _json(capsys)["chunker"] == "naive"


def test_ask_json_contract(cli_env, capsys):
    assert run(["ingest", "--corpus", "sample", "--json"]) == 0
    capsys.readouterr()
    assert run(["ask", "What is Milvus Lite?", "--top-k", "5", "--top-n", "2", "--json"]) == 0
    result = _json(capsys)
    assert result.keys() >= ASK_KEYS
    assert result["retrieval"] == "hybrid" and result["reranker"] == "none"
    assert len(result["sources"]) == 2
    for src in result["sources"]:
        assert set(src) == SOURCE_KEYS and src["rerank_score"] is None
    assert result["answer_backend"].startswith("extractive")


def test_ask_with_stand_in_reranker(cli_env, capsys):
    assert run(["ingest", "--corpus", "sample", "--json"]) == 0
    capsys.readouterr()
    assert (
        run(["ask", "What is Milvus Lite?", "--reranker", "stand-in", "--retrieval", "bm25", "--json"]) == 0
    )
    result = _json(capsys)
    assert result["retrieval"] == "bm25"
    assert "random weights" in result["reranker"]
    assert all(isinstance(s["rerank_score"], float) for s in result["sources"])


def test_ask_ingests_when_the_collection_is_missing(cli_env, capsys):
    assert run(["ask", "How is data stored in milvus?", "--json"]) == 0
    captured = capsys.readouterr()
    assert "is missing: ingesting" in captured.err
    assert json.loads(captured.out)["sources"]


@pytest.mark.parametrize(
    "argv",
    [
        ["ask", ""],
        ["ask", "   "],
        ["ask", "q?", "--top-k", "0"],
        ["ask", "q?", "--top-n", "-1"],
        ["ingest", "--corpus", "no-such-corpus"],
        ["ask", "q?", "--retrieval", "sparse"],
    ],
)
def test_bad_input_exits_2_with_one_line(cli_env, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        sys.exit(run(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "error" in err[-1] and "Traceback" not in "\n".join(err)


def test_unreadable_corpus_path_exits_2(cli_env, capsys):
    not_markdown = cli_env / "notes.txt"
    not_markdown.write_text("hello")
    assert run(["ingest", "--corpus", str(not_markdown)]) == 2
    assert "neither a folder" in capsys.readouterr().err


def test_module_entry_point_with_an_llm(cli_env):
    """The real `python -m helpers` process, answering through an OpenAI-compatible endpoint."""
    with OpenAIStub(reply="Milvus keeps inserted data in object storage [1].") as stub:
        env = {
            **os.environ,
            "OPENAI_BASE_URL": stub.base_url,
            "OPENAI_API_KEY": "sk-cli-test",
            "LLM_MODEL": "m",
        }
        done = subprocess.run(
            [sys.executable, "-m", "helpers", "ask", "Where does Milvus Lite keep its data?", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["answer"] == stub.reply and result["answer_backend"] == "m"
        sent = stub.requests[0]["json"]["messages"][1]["content"]
        assert '<source id="1"' in sent and result["sources"][0]["text"].strip()[:40] in sent
        assert "sk-cli-test" not in done.stdout + done.stderr
