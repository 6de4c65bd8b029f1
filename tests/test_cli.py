"""The CLI contract: `python -m helpers ingest|ask`, JSON shapes and exit codes."""

from __future__ import annotations

import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from openai_stub import OpenAIStub
from procs import child_env

from helpers.cli import main, run
from helpers.config import QWEN3_EMBEDDING_ID, QWEN3_RERANKER_ID

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


def test_each_command_closes_the_milvus_client_it_opened(cli_env, monkeypatch, capsys):
    """`run` is also called in-process (tests, a learner's script): it must not leave a client per call."""
    import helpers.pipeline

    opened = []
    connect = helpers.pipeline.connect
    monkeypatch.setattr(helpers.pipeline, "connect", lambda *a: opened.append(connect(*a)) or opened[-1])
    assert run(["ingest", "--corpus", "sample", "--json"]) == 0
    assert run(["ask", "What is Milvus Lite?", "--json"]) == 0
    assert len(opened) == 2
    for client in opened:
        with pytest.raises(Exception, match="should create connection first"):  # pymilvus' closed client
            client.list_collections()


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
    """Settings read and the corpus chunked, then Milvus is unreachable: no banner, only the error line."""
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
    assert headers == ["Answer (extractive: no LLM configured):"]  # no parentheses inside parentheses
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
    assert "answered HTTP 500 after 1 attempt. This is the best-matching passage" in out
    assert ".;" not in out, "a sentence, then a clause glued on"
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


# --- failing fast: Milvus and the models are checked before any model loads -----------------------


class _Hub(http.server.BaseHTTPRequestHandler):
    """A Hugging Face hub that is down: every request is recorded and answered 503."""

    paths: list[str]

    def do_GET(self) -> None:
        self.paths.append(self.path)
        self.send_error(503)

    do_HEAD = do_GET

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def down_hub(monkeypatch):
    """The URL of a local hub that answers 503, and the paths it was asked for."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    handler = type("Hub", (_Hub,), {"paths": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.paths
    server.shutdown()
    server.server_close()


PROBE = f"/api/models/{QWEN3_EMBEDDING_ID}"  # how `hub.reachable` asks whether the hub answers
# The CLI, with sentence-transformers' loaders replaced by one that says so and exits 99.
WITHOUT_LOADING = """
import sys
import sentence_transformers
from helpers.cli import main

def refuse(*args, **kwargs):
    print("a model was loaded", file=sys.stderr)
    raise SystemExit(99)

sentence_transformers.SentenceTransformer = sentence_transformers.CrossEncoder = refuse
main(sys.argv[1:])
"""


@pytest.fixture
def questions(tmp_path) -> str:
    path = tmp_path / "questions.jsonl"
    path.write_text(json.dumps({"query": "What is Milvus Lite?", "lang": "en", "relevant": ["Lite"]}) + "\n")
    return str(path)


def _cli_without_loading(argv: list[str], tmp_path: Path, hub: str | None, **env: str):
    """The CLI in a child process, with an empty hub cache and no loader; `hub`: HF_ENDPOINT, or offline."""
    env = child_env(HF_HOME=str(tmp_path / "hf-home"), RAG_LITE_FILE=str(tmp_path / "cli.db"), **env)
    if hub is None:
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env.pop("HF_HUB_OFFLINE", None)
        env.pop("TRANSFORMERS_OFFLINE", None)
        env["HF_ENDPOINT"] = hub
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_LOADING, *argv],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,  # a hang guard only: the run takes seconds
    )


@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE", "hub-unreachable"])
def test_qwen3_reranker_that_cannot_be_had_fails_fast_in_one_line(cli_env, tmp_path, down_hub, offline):
    """Not cached and no hub: one line, no model loaded, no file asked of the hub (no minute of retries)."""
    url, asked = down_hub
    argv = ["ask", "What is Milvus Lite?", "--reranker", "qwen3"]
    done = _cli_without_loading(argv, tmp_path, None if offline else url)
    assert done.returncode == 1 and done.stdout == "", done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: The reranker model '{QWEN3_RERANKER_ID}'"), lines
    assert ("HF_HUB_OFFLINE is set" if offline else "hub is unreachable") in lines[0]
    assert "--reranker none or stand-in" in lines[0]
    assert asked == ([] if offline else [PROBE]), "only whether the hub answers, once"


@pytest.mark.parametrize("command", ["ask", "ingest", "eval"])
def test_qwen3_embedder_that_cannot_be_had_fails_fast_in_one_line(
    cli_env, tmp_path, down_hub, questions, command
):
    """RAG_MODELS=qwen3, not cached, hub down: one line before any model loads, the hub asked once."""
    url, asked = down_hub
    argv = {
        "ask": ["ask", "What is Milvus Lite?"],
        "ingest": ["ingest", "--corpus", "sample"],
        "eval": ["eval", "--queries", questions, "--corpus", "sample", "--strategies", "dense"],
    }[command]
    done = _cli_without_loading(argv, tmp_path, url, RAG_MODELS="qwen3")
    assert done.returncode == 1 and done.stdout == "", done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"error: The embedding model '{QWEN3_EMBEDDING_ID}' is not in the local hub cache and the Hugging "
        "Face hub is unreachable"
    ), lines
    assert "RAG_MODELS=offline" in lines[0]
    assert asked == [PROBE], "only whether the hub answers, once"


@pytest.fixture
def no_loading(monkeypatch) -> list[str]:
    """Replace sentence-transformers' loaders in this process; returns what was asked to load."""
    loaded: list[str] = []

    def refuse(path, *args, **kwargs):
        loaded.append(str(path))
        raise OSError("this test loads no model")

    monkeypatch.setattr("sentence_transformers.SentenceTransformer", refuse)
    monkeypatch.setattr("sentence_transformers.CrossEncoder", refuse)
    return loaded


@pytest.mark.parametrize("command", ["ask", "ingest", "eval"])
def test_unreachable_milvus_fails_before_any_model_loads(
    cli_env, monkeypatch, capsys, no_loading, questions, command
):
    uri = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MILVUS_URI", uri)
    argv = {
        "ask": ["ask", "What is Milvus Lite?", "--reranker", "stand-in"],
        "ingest": ["ingest", "--corpus", "sample"],
        "eval": ["eval", "--queries", questions, "--corpus", "sample"],
    }[command]
    assert _main(argv) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1, err
    assert lines[0].startswith(f"error: Could not connect to the Milvus server at {uri}"), lines
    assert no_loading == [], "Milvus is checked before any model loads"


def test_a_malformed_dotenv_line_is_one_warning_naming_the_file_and_line(tmp_path):
    """The course reads `.env`, and so does pymilvus on import: one warning all the same."""
    (tmp_path / ".env").write_text('LLM_MODEL=m\nTHIS IS NOT VALID\nKEY="unterminated\n')
    # `python -c` runs in tmp_path, where pymilvus's own load_dotenv looks; the course looks there too.
    driver = (
        "import pathlib, sys, helpers.config; helpers.config.ROOT = pathlib.Path.cwd(); "
        "from helpers.cli import main; main(sys.argv[1:])"
    )
    env = child_env(RAG_LITE_FILE=str(tmp_path / "cli.db"), MILVUS_URI=f"http://127.0.0.1:{_closed_port()}")
    done = subprocess.run(
        [sys.executable, "-c", driver, "ingest", "--corpus", "sample"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and lines[-1].startswith("error: Could not connect to the Milvus server"), (
        lines
    )
    about_dotenv = [line for line in lines if "line" in line and ".env" in line]
    assert about_dotenv == [
        f"warning: {tmp_path / '.env'}: lines 2 and 3 could not be parsed and were ignored; write each "
        "setting as NAME=value, with any quote closed on the same line."
    ], lines
    assert "python-dotenv" not in done.stderr


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
