"""Query/document prompt handling, normalisation, Matryoshka dimensions and batch invariance."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.config import DEFAULT_QUERY_TASK
from helpers.embedding import Embedder, query_prompt, truncate_normalize

TEXTS = [
    "Milvus",
    "Where does Milvus store data? In object storage, with metadata in etcd.",
    "How do I pick nlist and nprobe for IVF indexes? " * 12,
    "¿Dónde guarda Milvus los datos?",
    "Milvus 如何存储数据？",
    "short one",
]


def test_query_prompt_format():
    assert query_prompt() == f"Instruct: {DEFAULT_QUERY_TASK}\nQuery:"
    assert query_prompt("Find FAQ answers") == "Instruct: Find FAQ answers\nQuery:"


def test_queries_get_the_instruction_documents_do_not(tiny_embedder):
    st = tiny_embedder.model
    q = "How is data stored in milvus?"
    expected_query = st.encode([query_prompt() + q], normalize_embeddings=True)
    expected_doc = st.encode([q], normalize_embeddings=True)
    np.testing.assert_allclose(tiny_embedder.encode_queries([q]), expected_query, atol=1e-6)
    np.testing.assert_allclose(tiny_embedder.encode_documents([q]), expected_doc, atol=1e-6)
    assert not np.allclose(expected_query, expected_doc, atol=1e-3)


def test_custom_and_empty_instruction(tiny_embedder):
    q = ["How is data stored in milvus?"]
    default = tiny_embedder.encode_queries(q)
    custom = tiny_embedder.encode_queries(q, instruction="Given a Milvus FAQ question, find the answer")
    bare = tiny_embedder.encode_queries(q, instruction="")
    assert not np.allclose(default, custom, atol=1e-4)
    np.testing.assert_allclose(bare, tiny_embedder.encode_documents(q), atol=1e-6)


def test_minilm_is_not_instruction_aware(minilm):
    assert not minilm.instruction_aware
    np.testing.assert_allclose(
        minilm.encode_queries(["milvus"]), minilm.encode_documents(["milvus"]), atol=1e-6
    )


@pytest.mark.parametrize("fixture", ["tiny_embedder", "minilm"])
def test_unit_length(fixture, request):
    emb: Embedder = request.getfixturevalue(fixture)
    vectors = emb.encode_documents(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), emb.full_dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("fixture", ["tiny_embedder", "minilm"])
def test_batched_equals_one_at_a_time(fixture, request):
    """Left padding plus last-token pooling must not depend on the batch's other members."""
    emb: Embedder = request.getfixturevalue(fixture)
    batched = emb.encode_documents(TEXTS)
    single = np.vstack([emb.encode_documents([t]) for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    queries = emb.encode_queries(TEXTS)
    np.testing.assert_allclose(queries, np.vstack([emb.encode_queries([t]) for t in TEXTS]), atol=1e-5)


def test_matryoshka_truncates_then_renormalises(minilm):
    full = minilm.encode_documents(TEXTS)
    cut = Embedder(minilm.model, minilm.model_id, dim=64).encode_documents(TEXTS)
    assert cut.shape == (len(TEXTS), 64)
    np.testing.assert_allclose(np.linalg.norm(cut, axis=1), 1.0, atol=1e-5)
    manual = full[:, :64] / np.linalg.norm(full[:, :64], axis=1, keepdims=True)
    np.testing.assert_allclose(cut, manual, atol=1e-5)


def test_dimension_bounds(minilm):
    with pytest.raises(ValueError, match=r"outside 1\.\.384"):
        Embedder(minilm.model, minilm.model_id, dim=1024)
    with pytest.raises(ValueError):
        truncate_normalize(np.ones((2, 8)), dim=0)


def test_empty_input(minilm):
    assert minilm.encode_documents([]).shape == (0, minilm.dim)


@pytest.mark.parametrize("fixture", ["tiny_embedder", "minilm"])
def test_embedder_equals_plain_sentence_transformers(fixture, request, base_settings):
    """The reference is sentence-transformers alone: a fresh `SentenceTransformer` on the model's folder,
    its own `encode_query` / `encode_document`, no helpers code in between."""
    from sentence_transformers import SentenceTransformer

    from helpers.offline.standins import model_path

    emb: Embedder = request.getfixturevalue(fixture)
    plain = SentenceTransformer(model_path(emb.model_id, base_settings.cache_dir), device="cpu")
    queries, docs = TEXTS[:3], TEXTS[3:]
    np.testing.assert_allclose(
        emb.encode_queries(queries), plain.encode_query(queries, normalize_embeddings=True), atol=1e-5
    )
    np.testing.assert_allclose(
        emb.encode_documents(docs), plain.encode_document(docs, normalize_embeddings=True), atol=1e-5
    )
    cut = Embedder(emb.model, emb.model_id, dim=32).encode_documents(docs)
    np.testing.assert_allclose(
        cut, plain.encode_document(docs, truncate_dim=32, normalize_embeddings=True), atol=1e-5
    )


def test_cpu_batches_group_texts_of_about_one_length_within_the_token_budget(minilm):
    from helpers.embedding import token_batches

    lengths = [5, 300, 7, 6, 290, 40, 41, 5, 100]
    batches = token_batches(lengths, budget=600, slack=1.1)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        longest, shortest = max(lengths[i] for i in batch), min(lengths[i] for i in batch)
        assert (longest <= 1.1 * shortest and len(batch) * longest <= 600) or len(batch) == 1
    assert [sorted(lengths[i] for i in b) for b in batches] == [[5, 5], [6], [7], [40, 41], [100], [290, 300]]
    texts = ["short", "a much longer text " * 20, "tiny", "medium length text here"]
    library = minilm.model.encode_document(texts, normalize_embeddings=True)
    assert np.allclose(minilm.encode_documents(texts), library, atol=1e-5)  # same vectors, other batches
