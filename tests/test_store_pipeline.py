"""Milvus store and the ingest/ask pipeline on Milvus Lite, with the offline kit."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from helpers.chunking import load_corpus, markdown_chunks
from helpers.cli import notes
from helpers.config import Settings
from helpers.pipeline import RAG
from helpers.setup import ModelChoice, ModelLoadError, choose_models
from helpers.store import HNSW_PARAMS, MilvusStore, StoreError, connect

OFFLINE = choose_models(Settings(models="offline"))  # resolves without the hub


@pytest.fixture
def rag(settings, minilm) -> RAG:
    return RAG(settings, OFFLINE, embedder=minilm)  # reuse the session's model instead of loading it again


def test_ingest_is_idempotent(rag):
    first = rag.ingest("sample", progress=False)
    n_chunks = len(markdown_chunks(load_corpus("sample").documents))
    assert first.rows == n_chunks == first.embedded
    second = rag.ingest("sample", progress=False)
    assert (second.rows, second.embedded, second.removed) == (n_chunks, 0, 0)
    assert asdict(first).keys() >= {"collection", "rows", "corpus", "chunker", "models"}


def test_interrupted_ingest_completes_without_duplicates(rag):
    chunks = markdown_chunks(load_corpus("sample").documents)
    store = rag.store
    store.create(rag.embedder.dim, rag.embedder.model_id)
    half = chunks[: len(chunks) // 2]
    store.upsert(half, rag.embedder.encode_documents([c.text for c in half]))  # as if killed here
    report = rag.ingest("sample", progress=False)
    assert report.embedded == len(chunks) - len(half)
    assert report.rows == len(chunks) == store.count()


def test_changed_corpus_removes_stale_rows(rag, tmp_path):
    rag.ingest("sample", progress=False)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "one.md").write_text("#### Only question?\n\nOnly answer about Milvus.\n")
    report = rag.ingest(str(folder), progress=False)
    assert report.rows == 1 and report.removed > 0


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_search_modes_return_text_and_source(rag, mode):
    rag.ingest("sample", progress=False)
    hits = rag.retrieve("How does hybrid search fuse BM25 and dense results?", mode=mode, limit=5)
    assert 1 <= len(hits) <= 5
    for h in hits:
        assert h.text and h.source.endswith(".md") and h.title and h.score > 0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_bm25_finds_an_exact_keyword(rag):
    rag.ingest("sample", progress=False)
    hits = rag.retrieve("Matryoshka", mode="bm25", limit=3)
    assert "matryoshka" in hits[0].text.lower()


def test_model_mismatch_is_a_clear_error(rag, settings, tiny_embedder):
    rag.ingest("sample", progress=False)
    other = RAG(settings, OFFLINE, embedder=tiny_embedder)
    with pytest.raises(StoreError, match="--rebuild"):
        other.ask("What is Milvus Lite?")
    with pytest.raises(StoreError, match="--rebuild"):
        other.ingest("sample", progress=False)
    # --rebuild fixes it.
    assert other.ingest("sample", rebuild=True, progress=False).rows > 0


def test_foreign_collection_is_refused(settings):
    store = MilvusStore(connect(settings.milvus_uri), "foreign")
    store.client.create_collection("foreign", dimension=4)
    with pytest.raises(StoreError, match="not created by this course"):
        store.check_model("x", 4)


def test_ask_offline_uses_hybrid_and_extractive_answer(rag):
    result = rag.ask("Where does Milvus Lite keep its data?", top_k=5, top_n=2)
    assert result.retrieval == "hybrid" and result.reranker == "none"
    assert len(result.sources) == 2 and all(s.rerank_score is None for s in result.sources)
    assert result.answer_backend.startswith("extractive")
    assert result.sources[0].text.strip() in result.answer
    assert any("reranking needs the real Qwen3 reranker" in n for n in notes(result, "auto", rag, None))
    assert result.timings_ms["total"] >= result.timings_ms["search"]


def test_ask_with_stand_in_reranker_is_labelled(rag):
    result = rag.ask("What is Milvus Lite?", top_k=6, top_n=3, reranker="stand-in")
    assert result.retrieval == "dense"
    assert "random weights" in result.reranker
    scores = [s.rerank_score for s in result.sources]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert any("mean nothing" in n for n in notes(result, "stand-in", rag, None))


@pytest.mark.parametrize(("question", "kwargs"), [("   ", {}), ("ok?", {"top_k": 0}), ("ok?", {"top_n": 0})])
def test_ask_rejects_bad_input(rag, question, kwargs):
    with pytest.raises(ValueError):
        rag.ask(question, **kwargs)


def test_upsert_checks_lengths(settings):
    store = MilvusStore(connect(settings.milvus_uri), "c")
    with pytest.raises(ValueError, match="passages but"):
        store.upsert([], np.zeros((1, 4), dtype=np.float32))


def test_qwen3_kit_reranks_by_default(settings):
    rag = RAG(settings, ModelChoice("qwen3", "e", "r", "test", "r"))
    assert rag.resolve_reranker("auto") == "qwen3"
    assert RAG(settings, OFFLINE).resolve_reranker("auto") == "none"
    with pytest.raises(ValueError, match="Unknown reranker"):
        rag.resolve_reranker("cohere")


def test_prepare_asks_the_hub_once_and_loads_nothing(settings, monkeypatch):
    """A model that is neither cached nor downloadable fails before any load, however often it is tried."""
    asked = []
    monkeypatch.setattr("helpers.offline.hub.is_cached", lambda model_id, revision=None: False)
    monkeypatch.setattr("helpers.offline.hub.reachable", lambda s: asked.append(s) or False)
    monkeypatch.setattr("helpers.pipeline.load_embedder", lambda *a: pytest.fail("a model was loaded"))
    qwen3 = ModelChoice("qwen3", "Qwen/Qwen3-Embedding-0.6B", "Qwen/Qwen3-Reranker-0.6B", "test", "r")
    rag = RAG(settings.with_overrides(hub_offline=False), qwen3)
    for _ in range(2):
        with pytest.raises(ModelLoadError, match=r"The embedding model 'Qwen/Qwen3-Embedding-0\.6B'"):
            rag.ask("What is Milvus Lite?")
        with pytest.raises(ModelLoadError, match="The embedding model"):
            rag.ingest("sample", progress=False)
    assert len(asked) == 1


def test_missing_collection_is_a_clear_error(settings):
    store = MilvusStore(connect(settings.milvus_uri), "nope")
    with pytest.raises(StoreError, match="python -m helpers ingest"):
        store.search("dense", np.ones(4, dtype=np.float32), "", 3)


def test_the_dense_index_is_built_with_the_parameters_asked_for(settings):
    """Milvus Lite drops build parameters sent as flat keys: `describe_index` shows what was applied."""
    store = MilvusStore(connect(settings.milvus_uri), "params_check")
    store.create(8, "some-model")
    applied = store.client.describe_index("params_check", "dense")
    store.client.close()
    assert applied["index_type"] == "HNSW" and applied.get("params") == HNSW_PARAMS


def test_a_collection_created_meanwhile_by_a_classmate_is_used_not_an_error(settings):
    """Two learners ingest into one shared collection at once: both see it missing, both create it."""
    client = connect(settings.milvus_uri)
    mine, theirs = MilvusStore(client, "shared"), MilvusStore(client, "shared")
    assert not mine.exists() and not theirs.exists()
    theirs.create(8, "m")
    mine.create(8, "m")  # lost the race: before the fix, "collection 'shared' already exists"
    mine.check_model("m", 8)
    with pytest.raises(StoreError, match="was built with m at dim 8"):
        mine.check_model("other", 16)
    client.close()
