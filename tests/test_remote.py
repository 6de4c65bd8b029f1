"""Served embedding and reranking against a real serving engine: Infinity on 127.0.0.1.

`make test` installs Infinity into .venv-infinity (it pins numpy<2 and transformers<5) and passes its
path in RAG_INFINITY. The server serves the offline kit's all-MiniLM-L6-v2, the tiny Qwen3 embedding
stand-in, and the tiny Qwen3 reranker stand-in converted to a sequence classifier (as vLLM converts
the real one at load time). Each served model is compared with the same model in this process.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from model_server import infinity_server
from procs import child_env
from qwen3_replicas import as_sequence_classifier

from helpers.chunking import load_corpus, markdown_chunks
from helpers.config import Settings
from helpers.embedding import Embedder, load_embedder
from helpers.offline.standins import MINILM_ID, TINY_EMBEDDER_ID, TINY_RERANKER_ID, model_path
from helpers.pipeline import RAG
from helpers.remote import (
    ModelServerError,
    RemoteEmbedder,
    RemoteReranker,
    embedding_endpoint,
    rerank_endpoint,
    split_prompt,
)
from helpers.setup import choose_models

QUESTION = "Where does Milvus Lite keep its data?"
DOCS = [
    "Milvus Lite keeps its data in a local file that you name.",
    "Bananas are yellow.",
    "Query nodes load sealed segments into memory and serve search requests.",
]


@pytest.fixture(scope="module")
def infinity(base_settings: Settings, tmp_path_factory) -> str:
    """Infinity serving the three models; its base URL."""
    exe = os.environ.get("RAG_INFINITY", "")
    if not exe:
        pytest.skip("RAG_INFINITY is unset: run `make test`, which installs Infinity into .venv-infinity")
    assert Path(exe).is_file(), f"RAG_INFINITY={exe} does not exist: run `make infinity`"
    tmp = tmp_path_factory.mktemp("infinity")
    reranker = as_sequence_classifier(
        Path(model_path(TINY_RERANKER_ID, base_settings.cache_dir)), tmp / "seq-cls"
    )
    models = {
        MINILM_ID: Path(model_path(MINILM_ID, base_settings.cache_dir)),
        TINY_EMBEDDER_ID: Path(model_path(TINY_EMBEDDER_ID, base_settings.cache_dir)),
        TINY_RERANKER_ID: reranker,
    }
    with infinity_server(exe, models, home=tmp / "home") as url:
        yield url


@pytest.fixture
def served(base_settings: Settings, infinity: str, tmp_path: Path) -> Settings:
    """Settings for the served kit: MiniLM embeddings and the stand-in reranker, both from Infinity."""
    return base_settings.with_overrides(
        embedding_url=infinity,
        rerank_url=infinity,
        embedding_model=MINILM_ID,
        reranker_model=TINY_RERANKER_ID,
        milvus_uri=str(tmp_path / "served.db"),
    )


@pytest.mark.parametrize("model_id", [MINILM_ID, TINY_EMBEDDER_ID])
def test_served_embeddings_equal_in_process(served, model_id):
    local = Embedder(load_embedder(model_id, served), model_id)
    remote = RemoteEmbedder(embedding_endpoint(served, model_id), batch_size=2)
    assert (remote.full_dim, remote.instruction_aware) == (local.full_dim, local.instruction_aware)
    np.testing.assert_allclose(remote.encode_documents(DOCS), local.encode_documents(DOCS), atol=1e-5)
    # The Qwen3 query instruction is applied on the client, exactly as in-process; "" means none.
    for instruction in (None, "", "Find the FAQ entry that answers the question"):
        np.testing.assert_allclose(
            remote.encode_queries([QUESTION], instruction),
            local.encode_queries([QUESTION], instruction),
            atol=1e-5,
        )
    small = remote.with_dim(16).encode_documents(DOCS)
    np.testing.assert_allclose(small, local.with_dim(16).encode_documents(DOCS), atol=1e-5)


def _p_yes_in_process(cross_encoder, query: str, document: str) -> float:
    """P("yes") of the causal stand-in for the pair as Infinity tokenizes it: each text stripped."""
    import torch

    tok, model = cross_encoder.tokenizer, cross_encoder.model
    ids = tok(query.strip(), document.strip(), return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits[0, -1]
    yes, no = tok.convert_tokens_to_ids(["yes", "no"])
    return float(torch.sigmoid(logits[yes] - logits[no]))


@pytest.mark.parametrize("instruction", [None, "", "Judge whether the passage answers the question"])
def test_served_reranker_scores_equal_in_process(served, tiny_cross_encoder, instruction):
    remote = RemoteReranker(rerank_endpoint(served, TINY_RERANKER_ID))
    assert remote.qwen3_prompt and remote.is_stand_in
    scores = remote.score(QUESTION, DOCS, instruction)
    # Infinity strips each text (see the README): the reference reads what Infinity reads.
    expected = [_p_yes_in_process(tiny_cross_encoder, *split_prompt(QUESTION, d, instruction)) for d in DOCS]
    np.testing.assert_allclose(scores, expected, atol=1e-4)
    reranker = RAG(served, choose_models(served)).reranker("qwen3")
    passages = reranker.rerank(QUESTION, _passages(), top_n=2, instruction=instruction)
    assert [p.text for p in passages] == [DOCS[i] for i in np.argsort(-scores, kind="stable")[:2]]


def _passages():
    from helpers.chunking import Passage

    return [Passage(id=str(i), text=d) for i, d in enumerate(DOCS)]


def test_served_retrieval_equals_in_process(served, minilm, base_settings, tmp_path):
    rag = RAG(served, choose_models(served))
    assert rag.choice.kit == "served" and isinstance(rag.embedder, RemoteEmbedder)
    report = rag.ingest("sample", progress=False)
    assert report.embedded == report.rows > 0 and report.models["embedding_url"] == served.embedding_url
    local_settings = base_settings.with_overrides(milvus_uri=str(tmp_path / "local.db"))
    local = RAG(local_settings, choose_models(local_settings), embedder=minilm)
    local.ingest("sample", progress=False)
    for mode in ("dense", "hybrid"):
        assert [h.id for h in rag.retrieve(QUESTION, mode, 5)] == [
            h.id for h in local.retrieve(QUESTION, mode, 5)
        ]
    result = rag.ask(QUESTION, top_k=5, top_n=2)
    assert result.reranker.startswith(TINY_RERANKER_ID) and all(
        s.rerank_score is not None for s in result.sources
    )
    rag.close()
    local.close()


def _served_env(served: Settings, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A child process's environment for the served kit, as an attendee's .env would set it."""
    return child_env(
        RAG_EMBEDDING_URL=served.embedding_url,
        RAG_RERANK_URL=served.rerank_url,
        RAG_EMBEDDING_MODEL=MINILM_ID,
        RAG_RERANKER_MODEL=TINY_RERANKER_ID,
        RAG_LITE_FILE=str(tmp_path / "course.db"),
        MILVUS_URI="",
        **extra,
    )


def test_cli_ingest_ask_and_eval_against_the_server(served, tmp_path):
    env = _served_env(served, tmp_path)

    def cli(*args: str) -> dict:
        done = subprocess.run(
            [sys.executable, "-m", "helpers", *args, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert "served kit" in done.stderr
        return json.loads(done.stdout)

    first = cli("ingest", "--corpus", "sample")
    assert first["models"]["kit"] == "served" and first["embedded"] == first["rows"] > 0
    assert cli("ingest", "--corpus", "sample")["embedded"] == 0, "a second ingest embeds nothing"
    answer = cli("ask", QUESTION, "--top-k", "5", "--top-n", "2")
    assert answer["retrieval"] == "dense" and answer["reranker"].startswith(TINY_RERANKER_ID)
    assert len(answer["sources"]) == 2 and answer["sources"][0]["rerank_score"] is not None
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"query": QUESTION, "lang": "en", "relevant": ["Milvus Lite"]}) + "\n")
    report = cli("eval", "--queries", str(questions), "--corpus", "sample", "--strategies", "dense,rerank")
    assert report["models"]["kit"] == "served" and set(report["strategies"]) == {"dense", "rerank"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_one_line_after_bounded_retries(served, tmp_path):
    env = child_env(
        RAG_EMBEDDING_URL=f"http://127.0.0.1:{_closed_port()}",
        RAG_EMBEDDING_MODEL=MINILM_ID,
        RAG_MODEL_MAX_RETRIES="1",
        RAG_LITE_FILE=str(tmp_path / "x.db"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "helpers", "ingest", "--corpus", "sample"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Could not connect to the embedding server") and "RAG_EMBEDDING_URL" in last
    assert "(2 attempts)" in last  # RAG_MODEL_MAX_RETRIES=1 bounds the wait: one try and one retry
    assert "Traceback" not in done.stderr


def test_wrong_model_name_and_wrong_route_are_clear(served):
    with pytest.raises(
        ModelServerError, match=r"refused the request for model 'no-such-model'.*RAG_EMBEDDING_MODEL"
    ):
        RemoteEmbedder(embedding_endpoint(served, "no-such-model"))
    # The embedding model cannot rerank: the server says so, in one line.
    with pytest.raises(ModelServerError, match=r"rerank server .* refused the request .*RAG_RERANKER_MODEL"):
        RemoteReranker(rerank_endpoint(served, MINILM_ID)).score(QUESTION, DOCS)


def test_dimension_different_from_the_collection_is_refused(served):
    RAG(served, choose_models(served)).ingest("sample", progress=False)
    other = served.with_overrides(embedding_model=TINY_EMBEDDER_ID)
    with pytest.raises(Exception, match=r"built with .*all-MiniLM-L6-v2 at dim 384.*dim 64.*--rebuild"):
        RAG(other, choose_models(other)).retrieve(QUESTION)


def test_ingest_that_loses_the_server_midway_resumes_without_duplicates(served, monkeypatch):
    chunks = markdown_chunks(load_corpus("sample", served).documents)
    calls = {"n": 0}
    call = RemoteEmbedder._call

    def dies_after_two_batches(self, texts):
        calls["n"] += 1
        if calls["n"] > 3:  # the dimension probe, then two batches
            raise ModelServerError("Could not connect to the embedding server (test).")
        return call(self, texts)

    monkeypatch.setattr(RemoteEmbedder, "_call", dies_after_two_batches)
    rag = RAG(served, choose_models(served))
    in_eights = lambda items, total, label: items  # noqa: E731 (a progress hook: batches of 8 passages)
    with pytest.raises(ModelServerError):
        rag.ingest("sample", progress=in_eights)
    kept = rag.store.count()
    assert 0 < kept < len(chunks), "the batches embedded before the failure are stored"
    monkeypatch.setattr(RemoteEmbedder, "_call", call)
    report = RAG(served, choose_models(served)).ingest("sample", progress=False)
    assert report.rows == len(chunks) and report.embedded == len(chunks) - kept


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers POSTs from a script: (status, JSON body) pairs, one per request."""

    script: ClassVar[list[tuple[int, object]]] = []
    seen: ClassVar[list[dict]] = []

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        type(self).seen.append(json.loads(self.rfile.read(length)))
        status, body = type(self).script.pop(0)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    """A loopback server answering from `_Scripted.script` (for faults no real engine produces on cue)."""
    _Scripted.script, _Scripted.seen = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield _Scripted, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _vectors(n: int, width: int = 4) -> dict:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": [1.0] * width} for i in range(n)],
    }


def test_5xx_is_retried_and_a_malformed_answer_is_refused(scripted, base_settings):
    handler, url = scripted
    settings = base_settings.with_overrides(embedding_url=url, model_max_retries=2)
    handler.script += [(503, {"error": "busy"}), (200, _vectors(1)), (200, {"object": "list", "data": []})]
    remote = RemoteEmbedder(embedding_endpoint(settings, "m"))
    assert remote.full_dim == 4 and len(handler.seen) == 2, "one 503, retried, then the probe's answer"
    with pytest.raises(ModelServerError, match=r"answered 0 vectors .* for 2 texts"):
        remote.encode_documents(["a", "b"])
    handler.script += [(200, {"results": [{"index": 0, "relevance_score": 0.5}]})]
    with pytest.raises(ModelServerError, match="did not answer one score per document"):
        RemoteReranker(rerank_endpoint(settings.with_overrides(rerank_url=url), "m")).score("q", ["a", "b"])
    handler.script += [(200, [{"index": 1, "score": 0.25}, {"index": 0, "score": 0.75}])]
    scores = RemoteReranker(rerank_endpoint(settings.with_overrides(rerank_url=url), "m")).score(
        "q", ["a", "b"]
    )
    assert scores.tolist() == [0.75, 0.25], "TEI's answer shape is read too"
    assert handler.seen[-1]["documents"] == handler.seen[-1]["texts"] == ["a", "b"], (
        "not a Qwen3 id: texts as given"
    )


def test_notebooks_run_on_served_models(served, archive_zip, tmp_path):
    """05 answers through a `RAG` built from the settings, so through the server; 04 and 06 reach it by the
    same `RAG` (run by the unit tests above), 01-03 load their models in the kernel, as they teach."""
    from notebook_runner import NOTEBOOKS_DIR, run_notebooks

    env = _served_env(served, tmp_path, MILVUS_DOCS_ZIP=str(archive_zip))
    failures = run_notebooks([NOTEBOOKS_DIR / "05_generation.ipynb"], env)
    assert not failures, "\n\n".join(str(f) for f in failures)
