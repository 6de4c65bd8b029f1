"""The embedding cache: a second notebook or a re-run reads vectors from disk; any change to what determines
a vector (text, model, revision, weights, prompt, Matryoshka dimension) misses, and the model runs again."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.config import QWEN3_EMBEDDING_ID, QWEN3_REVISIONS
from helpers.embedding import Embedder, course_embedder
from helpers.vector_cache import VectorCache

FILE_NAME = "embeddings.sqlite"

TEXTS = ["Milvus stores data in segments.", "BM25 scores words.", "HNSW is a graph index."]


class Counting(Embedder):
    """An Embedder that records which texts reached the model."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.computed: list[list[str]] = []

    def _library(self, texts, prompt):
        self.computed.append(list(texts))
        return super()._library(texts, prompt)


@pytest.fixture
def cache(tmp_path) -> VectorCache:
    return VectorCache(tmp_path / FILE_NAME)


def test_a_second_run_reads_every_vector_from_disk(minilm, cache, tmp_path):
    first = Counting(minilm.model, minilm.model_id, cache=cache)
    vectors = first.encode_documents(TEXTS)
    assert first.computed == [TEXTS]
    library = minilm.model.encode_document(TEXTS, normalize_embeddings=True)  # the library alone
    assert np.allclose(vectors, library, atol=1e-6)
    # another notebook: a new process opens the same file
    again = Counting(minilm.model, minilm.model_id, cache=VectorCache(tmp_path / FILE_NAME))
    assert np.array_equal(again.encode_documents(TEXTS), vectors) and again.computed == []
    assert len(cache) == 3


def test_a_changed_text_misses_and_only_it_is_embedded(minilm, cache):
    embedder = Counting(minilm.model, minilm.model_id, cache=cache)
    embedder.encode_documents(TEXTS)
    changed = [TEXTS[0], TEXTS[1] + " Really.", TEXTS[2]]
    out = embedder.encode_documents(changed)
    assert embedder.computed[1:] == [[changed[1]]]
    assert np.allclose(
        out[1], minilm.model.encode_document([changed[1]], normalize_embeddings=True)[0], atol=1e-6
    )


def test_a_changed_prompt_misses(tiny_embedder, cache):
    embedder = Counting(tiny_embedder.model, tiny_embedder.model_id, cache=cache)
    docs = embedder.encode_documents(TEXTS[:1])
    query = embedder.encode_queries(TEXTS[:1])  # same text, Qwen3's query instruction in front
    custom = embedder.encode_queries(TEXTS[:1], instruction="Find the answer")
    assert len(embedder.computed) == 3 and not np.allclose(docs, query) and not np.allclose(query, custom)
    embedder.encode_queries(TEXTS[:1], instruction="Find the answer")
    assert len(embedder.computed) == 3  # the same prompt again: from disk


def test_another_model_revision_or_weights_misses(minilm, tiny_embedder, cache):
    Counting(minilm.model, minilm.model_id, cache=cache).encode_documents(TEXTS)
    for other in (
        Counting(tiny_embedder.model, tiny_embedder.model_id, cache=cache),  # another model
        Counting(minilm.model, minilm.model_id, cache=cache, revision="abc123"),  # another revision
    ):
        other.encode_documents(TEXTS)
        assert other.computed == [TEXTS]
    retrained = copy.deepcopy(tiny_embedder.model)  # the same id, other weights (a fine-tune, a new commit)
    with torch.no_grad():
        next(retrained.parameters()).add_(0.01)
    first = Counting(tiny_embedder.model, tiny_embedder.model_id, cache=cache)
    first.encode_documents(TEXTS)
    second = Counting(retrained, tiny_embedder.model_id, cache=cache)
    second.encode_documents(TEXTS)
    assert first.computed == [] and second.computed == [TEXTS]  # first: read what the loop above stored


def test_a_matryoshka_dimension_is_a_key_of_its_own(tiny_embedder, cache):
    full = Counting(tiny_embedder.model, tiny_embedder.model_id, cache=cache)
    full.encode_documents(TEXTS)
    small = Counting(tiny_embedder.model, tiny_embedder.model_id, dim=16, cache=cache)
    cut = small.encode_documents(TEXTS)
    assert small.computed == [TEXTS] and cut.shape == (3, 16)
    library = tiny_embedder.model.encode_document(TEXTS, truncate_dim=16, normalize_embeddings=True)
    assert np.allclose(cut, library, atol=1e-6)
    assert np.allclose(np.linalg.norm(cut, axis=1), 1, atol=1e-5)


def test_repeated_texts_in_one_call_are_embedded_once(minilm, cache):
    embedder = Counting(minilm.model, minilm.model_id, cache=cache)
    out = embedder.encode_documents([TEXTS[0], TEXTS[1], TEXTS[0]])
    assert embedder.computed == [[TEXTS[0], TEXTS[1]]] and np.array_equal(out[0], out[2])


def test_course_embedder_uses_the_settings(minilm, base_settings, tmp_path):
    on = course_embedder(
        minilm.model, QWEN3_EMBEDDING_ID, base_settings.with_overrides(cache_dir=str(tmp_path))
    )
    assert on.cache.path == tmp_path / FILE_NAME and on.revision == QWEN3_REVISIONS[QWEN3_EMBEDDING_ID]
    off = course_embedder(minilm.model, minilm.model_id, base_settings.with_overrides(embed_cache=False))
    assert off.cache is None


def test_notebook_03_embeds_only_what_02_did_not_keep(base_settings, archive_zip, tmp_path):
    """On the core path (what a class runs), 02 keeps its passage vectors and 03 embeds only its question."""
    import os
    import sqlite3

    from benchmarks.notebooks import _fresh_cache, run_course
    from helpers.chunking import chunk_documents, load_corpus
    from helpers.config import ROOT

    cache_dir = _fresh_cache(Path(base_settings.cache_dir), tmp_path)
    env = {**os.environ, "RAG_EMBED_CACHE": "1", "RAG_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(ROOT)}
    rows = []
    for name in ("02_embedding", "03_milvus_indexing"):
        result = run_course([ROOT / "notebooks" / f"{name}.ipynb"], env, ("core",))
        assert result["failures"] == {}
        db = cache_dir / FILE_NAME  # absent while nothing was kept
        count = "SELECT COUNT(*) FROM vectors"
        rows.append(sqlite3.connect(db).execute(count).fetchone()[0] if db.exists() else 0)
    passages = len(chunk_documents(load_corpus("milvus-faq", base_settings).documents, "markdown"))  # 57
    assert rows == [passages, passages + 1]  # 02: every passage; 03: one question more, no passage again
