"""The CLI contract: `python -m helpers ingest|ask`, JSON shapes and exit codes."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest
from openai_stub import OpenAIStub

from helpers.__main__ import main, run

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
    monkeypatch.delenv("MILVUS_URI", raising=False)
    monkeypatch.setenv("RAG_LITE_FILE", str(tmp_path / "cli.db"))
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


# --- what the CLI prints ---------------------------------------------------------------------------


def _main(argv: list[str]) -> int:
    """The console entry point in this process (its warning and logging set-up included)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


@pytest.fixture
def ingested(cli_env, capsys):
    assert run(["ingest", "--corpus", "sample", "--json"]) == 0
    capsys.readouterr()
    return cli_env


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_error_after_start_up_is_the_last_line_and_stands_alone(cli_env, monkeypatch, capsys):
    """Corpus loaded and chunked, then Milvus is unreachable: no banner, only the error line."""
    monkeypatch.setenv("MILVUS_URI", f"http://127.0.0.1:{_closed_port()}")
    assert _main(["ingest", "--corpus", "sample"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Models:" not in err


def test_the_banner_follows_the_work_once_it_succeeded(ingested, capsys):
    assert _main(["ask", "What is Milvus Lite?"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("Models: offline kit") and "error" not in err
    assert "Question: What is Milvus Lite?" in out


@pytest.mark.parametrize("retrieval", ["dense", "bm25", "hybrid"])
def test_notes_name_the_retrieval_that_ran(ingested, capsys, retrieval):
    assert _main(["ask", "What is Milvus Lite?", "--retrieval", retrieval]) == 0
    out, err = capsys.readouterr()
    assert f"Retrieval: {retrieval}" in out
    hybrid_claims = (out + err).count("hybrid search (dense + BM25)")
    assert hybrid_claims == (1 if retrieval == "hybrid" else 0), out + err
    label = {"dense": "dense search", "bm25": "BM25 keyword search", "hybrid": "hybrid search"}[retrieval]
    assert f"Note: Offline kit: passages are ranked by {label}" in out


def test_one_answer_header_without_an_llm(ingested, capsys):
    assert _main(["ask", "What is Milvus Lite?"]) == 0
    out = capsys.readouterr().out
    headers = [line for line in out.splitlines() if line.startswith("Answer")]
    assert headers == ["Answer (extractive (no LLM)):"]
    assert "set OPENAI_API_KEY" in out  # nothing is configured: that is the hint that fits


def test_one_answer_header_and_a_fitting_hint_when_the_llm_fails(ingested, monkeypatch, capsys):
    with OpenAIStub() as stub:
        stub.faults += [500]
        monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-fails")
        monkeypatch.setenv("LLM_MODEL", "m")
        monkeypatch.setenv("LLM_MAX_RETRIES", "0")
        assert _main(["ask", "What is Milvus Lite?"]) == 0
        assert len(stub.requests) == 1
    out, err = capsys.readouterr()
    headers = [line for line in out.splitlines() if line.startswith("Answer")]
    assert headers == ["Answer (extractive: the LLM call failed):"], out
    assert not re.search(r"(?<!un)set OPENAI_API_KEY", out + err)  # it is set: that hint would not help
    assert f"An LLM endpoint is configured ({stub.base_url}) but its call failed" in out
    assert out.count("answered HTTP 500") == 1  # the reason, once
    assert "sk-cli-fails" not in out + err


def test_a_streamed_answer_has_one_header(ingested, monkeypatch, capsys):
    with OpenAIStub(reply="Milvus Lite keeps everything in one local file [1].") as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-streams")
        monkeypatch.setenv("LLM_MODEL", "m")
        assert _main(["ask", "What is Milvus Lite?"]) == 0
    out = capsys.readouterr().out
    headers = [line for line in out.splitlines() if line.startswith("Answer")]
    assert headers == ["Answer (m):"]
    answer = out.split("Answer (m):\n", 1)[1]
    assert answer.startswith(stub.reply + "\n")
    assert out.index("[1] score=") < out.index("Answer (m):")  # sources first, then the answer


@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE", "hub-unreachable"])
def test_qwen3_reranker_that_cannot_be_had_fails_fast_in_one_line(cli_env, tmp_path, offline):
    """Not cached and no hub: one line within seconds, not a minute of hub retries."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env.update(HF_HOME=str(tmp_path / "hf-home"), RAG_LITE_FILE=str(tmp_path / "cli.db"))
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    else:  # a hub that refuses connections: nothing leaves this machine
        env.pop("HF_HUB_OFFLINE", None)
        env.pop("TRANSFORMERS_OFFLINE", None)
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "helpers", "ask", "What is Milvus Lite?", "--reranker", "qwen3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - start
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: The reranker model 'Qwen/Qwen3-Reranker-0.6B'")
    assert ("HF_HUB_OFFLINE is set" if offline else "hub is unreachable") in lines[0]
    assert elapsed < 15, f"took {elapsed:.1f} s"


def test_an_instruction_the_model_ignores_is_reported(ingested, capsys):
    argv = ["ask", "What is Milvus Lite?", "--instruction", "Find FAQ answers"]
    assert _main([*argv, "--retrieval", "dense"]) == 0
    out = capsys.readouterr().out
    assert (
        "Note: The instruction was not used for retrieval: sentence-transformers/all-MiniLM-L6-v2 is not "
        "instruction-aware, so the query embedding ignores it; it changed nothing." in out
    )
    assert _main([*argv, "--reranker", "stand-in"]) == 0
    assert "only the reranker used it" in capsys.readouterr().out


def test_question_truncation_is_reported_once(ingested, capsys):
    question = "How is data stored in milvus? " + "x" * 5000
    assert _main(["ask", question, "--top-k", "3", "--top-n", "1"]) == 0
    out, err = capsys.readouterr()
    assert (out + err).count("5,030 characters; only its first 1,024 are used") == 1, out + err


def test_warnings_print_on_one_line(cli_env, monkeypatch, capsys):
    monkeypatch.delenv("RAG_LITE_FILE")
    monkeypatch.setenv("MILVUS_URI", str(cli_env / "old-style.db"))  # an old .env's setting: a warning
    assert _main(["ingest", "--corpus", "sample", "--json"]) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if "MILVUS_URI" in line]
    assert len(warning) == 1 and warning[0].startswith("warning: MILVUS_URI="), err


def test_no_pymilvus_mvcc_warning_when_ingest_removes_rows(cli_env, capfd):
    """pymilvus logs through its own handler on the real stderr, hence capfd."""
    assert run(["ingest", "--corpus", "sample", "--json"]) == 0
    capfd.readouterr()
    assert _main(["ingest", "--corpus", "sample", "--chunker", "naive"]) == 0
    out, err = capfd.readouterr()
    assert "removed)" in out and " 0 removed" not in out
    assert "mvccTs" not in out + err
