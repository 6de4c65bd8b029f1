"""The real server path: `milvus-lite server` on 127.0.0.1 and a free port, reached by `http://` URI.

This is the code a learner points at Milvus Standalone, Distributed or Zilliz Cloud: ingest, dense,
BM25 and hybrid search and `ask` go through gRPC to another process, several processes use it at
once, and nothing listens on anything but loopback. The server stops when the module ends.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from model_server import lite_server
from openai_stub import OpenAIStub
from procs import child_env, is_loopback, read_line, stop

from helpers.chunking import Passage, load_corpus, markdown_chunks
from helpers.config import Settings
from helpers.pipeline import RAG
from helpers.setup import choose_models
from helpers.store import SEARCH_MODES, connect

OFFLINE = choose_models(Settings(models="offline"))  # resolves without the hub

QUESTION = "How does hybrid search fuse BM25 and dense results?"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """A Milvus-compatible server for this module, stopped at its end."""
    with lite_server(tmp_path_factory.mktemp("milvus-server")) as uri:
        yield uri


@pytest.fixture(scope="module")
def remote(server, base_settings, minilm) -> RAG:
    """The sample corpus ingested through the server."""
    rag = RAG(base_settings.with_overrides(milvus_uri=server, collection="course"), OFFLINE, embedder=minilm)
    rag.ingest("sample", progress=False)
    return rag


def _chunks() -> list[Passage]:
    return markdown_chunks(load_corpus("sample").documents)


def test_server_uri_is_http_on_loopback(server):
    assert server.startswith("http://127.0.0.1:")


def test_ingest_through_the_server_is_complete_and_idempotent(remote):
    n = len(_chunks())
    assert remote.store.count() == n
    again = remote.ingest("sample", progress=False)
    assert (again.rows, again.embedded, again.removed) == (n, 0, 0)


@pytest.mark.parametrize("mode", SEARCH_MODES)
def test_search_modes_through_the_server(remote, mode):
    hits = remote.retrieve(QUESTION, mode, 5)
    assert 1 <= len(hits) <= 5
    assert all(h.text and h.source.endswith(".md") and h.title and h.score > 0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_server_and_lite_file_give_the_same_results(remote, base_settings, minilm, tmp_path):
    lite = RAG(base_settings.with_overrides(milvus_uri=str(tmp_path / "lite.db")), OFFLINE, embedder=minilm)
    lite.ingest("sample", progress=False)
    for mode in SEARCH_MODES:
        assert [h.id for h in remote.retrieve(QUESTION, mode, 5)] == [
            h.id for h in lite.retrieve(QUESTION, mode, 5)
        ], mode


def test_ask_through_the_server(remote, minilm):
    result = remote.ask("Where does Milvus Lite keep its data?", top_k=5, top_n=2)
    assert result.retrieval == "hybrid" and len(result.sources) == 2
    assert result.answer_backend.startswith("extractive")
    with OpenAIStub(reply="In a local folder [1].") as stub:
        settings = remote.settings.with_overrides(openai_base_url=stub.base_url, llm_max_retries=0)
        answered = RAG(settings, OFFLINE, embedder=minilm).ask(
            "Where does Milvus Lite keep its data?", top_n=2
        )
        assert answered.answer == stub.reply and answered.answer_backend == settings.llm_model
        assert [s.id for s in answered.sources] == [s.id for s in result.sources]


SEARCHER = """
import json, os, sys, time
from helpers.store import MilvusStore, connect


uri, collection, vectors_file, stop_file, lo, hi = sys.argv[1:7]
vectors = json.loads(open(vectors_file).read())
store = MilvusStore(connect(uri), collection)
deadline = time.monotonic() + 120  # bounded, even if the test never says stop
searches, errors = 0, []
while not os.path.exists(stop_file) and time.monotonic() < deadline:
    for i, vector in enumerate(vectors):
        mode = ("dense", "bm25", "hybrid")[i % 3]
        try:
            hits = store.search(mode, vector, "How is data stored in Milvus?", 5)
            rows = store.count()
            if not hits:
                errors.append(f"{mode}: no hits")
            if not int(lo) <= rows <= int(hi):
                errors.append(f"count {rows} outside {lo}..{hi}")
            searches += 1
        except Exception as exc:
            errors.append(f"{mode}: {type(exc).__name__}: {exc}"[:300])
    if searches and searches <= len(vectors):
        print("searching", flush=True)
    time.sleep(0.05)
print(json.dumps({"searches": searches, "errors": errors[:10], "n_errors": len(errors)}), flush=True)
"""


def test_searches_while_another_process_ingests(server, base_settings, minilm, tmp_path):
    """One process ingests (CLI, MILVUS_URI=http://...) while four others search the same collection."""
    chunks = _chunks()
    n, half = len(chunks), len(chunks) // 2
    rag = RAG(
        base_settings.with_overrides(milvus_uri=server, collection="concurrent"), OFFLINE, embedder=minilm
    )
    store = rag.store
    store.drop()
    store.create(minilm.dim, minilm.model_id)
    stale = Passage(
        id="stale-passage-0001",
        text="#### Gone?\n\nA passage that left the corpus.",
        source="gone.md",
        title="Gone?",
    )
    first = [*chunks[:half], stale]
    store.upsert(first, minilm.encode_documents([c.text for c in first]))

    questions = ["How is data stored in Milvus?", "What is BM25?", "Which index types exist?"]
    (tmp_path / "vectors.json").write_text(json.dumps(minilm.encode_queries(questions).tolist()))
    stop_file = tmp_path / "stop"
    args = [server, "concurrent", str(tmp_path / "vectors.json"), str(stop_file), str(half + 1), str(n + 1)]
    searchers = [
        subprocess.Popen(
            [sys.executable, "-c", SEARCHER, *args],
            stdout=subprocess.PIPE,
            stderr=(tmp_path / f"searcher{i}.log").open("w"),
            text=True,
            env=child_env(),
        )
        for i in range(4)
    ]
    try:
        for i, proc in enumerate(searchers):
            assert read_line(proc, timeout=60) == "searching", (tmp_path / f"searcher{i}.log").read_text()
        ingest = subprocess.run(
            [sys.executable, "-m", "helpers", "ingest", "--corpus", "sample", "--json"],
            env=child_env(MILVUS_URI=server, MILVUS_COLLECTION="concurrent"),
            capture_output=True,
            text=True,
            timeout=180,
        )
        time.sleep(0.5)  # a few more searches after the last write
        stop_file.touch()
        outputs = [proc.communicate(timeout=60)[0] for proc in searchers]
    finally:
        for proc in searchers:
            stop(proc)
    assert ingest.returncode == 0, ingest.stderr
    report = json.loads(ingest.stdout)
    assert (report["rows"], report["embedded"], report["removed"]) == (n, n - half, 1)
    for out in outputs:
        stats = json.loads(out.strip().splitlines()[-1])
        assert stats["n_errors"] == 0, stats["errors"]
        assert stats["searches"] > 0
    assert store.count() == n
    ids = [
        r["id"] for r in store.client.query(store.collection, filter="", output_fields=["id"], limit=n + 10)
    ]
    assert len(ids) == len(set(ids)) == n and stale.id not in ids


# --- nothing listens on anything but loopback ------------------------------------------------------


def _non_loopback_addresses() -> list[tuple[socket.AddressFamily, str]]:
    psutil = pytest.importorskip("psutil")
    found = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(a.address):
                if a.family == socket.AF_INET6 and a.address.lower().startswith("fe80"):
                    continue  # link-local addresses need a scope id; skip them
                found.append((a.family, a.address.split("%")[0]))
    return found


def _listening(pids: set[int]) -> list[tuple[int, str, int]]:
    psutil = pytest.importorskip("psutil")
    return [
        (c.pid, c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    ]


def test_server_listens_on_loopback_only(server, remote, tmp_path):
    """The server, and the Milvus Lite server that `connect` runs inside this process for a file."""
    psutil = pytest.importorskip("psutil")
    connect(str(tmp_path / "in-process.db")).list_collections()
    port = int(server.rsplit(":", 1)[1])
    me = psutil.Process()
    project = {me.pid} | {p.pid for p in me.children(recursive=True)}
    sockets = _listening(project)
    assert any(p == port for _, _, p in sockets), sockets
    assert any(pid == me.pid for pid, _, _ in sockets), "the in-process Milvus Lite server listens too"
    assert all(is_loopback(ip) for _, ip, _ in sockets), sockets
    outside = _non_loopback_addresses()
    if not outside:
        pytest.skip("this machine has no non-loopback address to try")
    for family, address in outside:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            assert s.connect_ex((address, port)) != 0, f"the server answered on {address}:{port}"


def test_lite_server_stops_when_the_block_exits(tmp_path):
    psutil = pytest.importorskip("psutil")
    before = {p.pid for p in psutil.Process().children()}
    with lite_server(tmp_path / "data") as uri:
        port = int(uri.rsplit(":", 1)[1])
        started = [p for p in psutil.Process().children() if p.pid not in before]
        assert len(started) == 1 and "--port" in started[0].cmdline()
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert not started[0].is_running() or started[0].status() == psutil.STATUS_ZOMBIE
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers after lite_server exited"


def test_eval_on_a_server_works_in_scratch_collections_and_removes_them(server, base_settings, tmp_path):
    """`eval` against a server indexes into temporary collections and drops them, the user's untouched."""
    from helpers.cli_eval import run_eval

    settings = base_settings.with_overrides(milvus_uri=server, collection="course")
    before = set(connect(server).list_collections())
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"query": QUESTION, "lang": "en", "relevant": ["hybrid"]}) + "\n")
    report = run_eval(questions, settings, OFFLINE, corpus="sample", strategies=("dense",), dims=(32,))
    assert report["n_queries"] == 1 and "32" in report["ablations"]["dims"]
    assert set(connect(server).list_collections()) == before, "no eval_* collection is left behind"
