"""The reranker: prompt, fast path (CrossEncoder) against the model card reference, ordering."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.config import DEFAULT_RERANK_TASK
from helpers.passage import Passage
from helpers.rerank import PREFIX, SUFFIX, Reranker, format_pair, full_prompt, reference_scores

QUERY = "How is data stored in milvus?"
DOCS = [
    "Milvus stores inserted data in object storage as incremental logs; metadata lives in etcd.",
    "yes",
    "Reciprocal rank fusion adds 1 / (k + rank) over the result lists. " * 15,
    "HNSW builds a layered graph for approximate nearest neighbour search.",
    "Milvus Lite keeps a whole collection in one local file.",
    "¿Dónde guarda Milvus los datos? En almacenamiento de objetos.",
    "Milvus 将数据存储在对象存储中。",
]


@pytest.fixture(scope="module")
def reranker(tiny_cross_encoder) -> Reranker:
    return Reranker(tiny_cross_encoder, "stand-in/tiny-qwen3-reranker", is_stand_in=True)


def _reference(ce, query, docs, instruction=None):
    return reference_scores(ce.model, ce.tokenizer, query, docs, instruction)


def test_prompt_matches_the_model_card():
    text = full_prompt("q?", "d.", "Find answers")
    assert text == (
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
        'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
        "<Instruct>: Find answers\n<Query>: q?\n<Document>: d.<|im_end|>\n<|im_start|>assistant\n"
        "<think>\n\n</think>\n\n"
    )
    assert format_pair("q", "d").startswith(f"<Instruct>: {DEFAULT_RERANK_TASK}\n")


@pytest.mark.parametrize("instruction", [None, "", "Find answers"])
def test_chat_template_renders_the_exact_prompt(tiny_cross_encoder, instruction):
    kwargs = {} if instruction is None else {"chat_template": {"instruction": instruction}}
    features = tiny_cross_encoder.preprocess([(QUERY, DOCS[0])], processing_kwargs=kwargs)
    ids = features["input_ids"][0].tolist()
    prompt = full_prompt(QUERY, DOCS[0], instruction)
    assert ids == tiny_cross_encoder.tokenizer.encode(prompt, add_special_tokens=False)
    assert ("<Instruct>:" in prompt) == (instruction != "")


def test_no_instruction_means_none_for_the_reranker_as_for_the_embedder(reranker, tiny_cross_encoder):
    """`--instruction none` ("") drops the <Instruct> line, as the embedder embeds a bare query for ""."""
    assert format_pair("q", "d", "") == "<Query>: q\n<Document>: d"
    bare = reranker.score(QUERY, DOCS, instruction="")
    np.testing.assert_allclose(bare, _reference(tiny_cross_encoder, QUERY, DOCS, ""), atol=1e-4)
    assert not np.allclose(bare, reranker.score(QUERY, DOCS), atol=1e-4)


@pytest.mark.parametrize("n_docs", [1, 2, 5, 7])
@pytest.mark.parametrize("budget", [64, 700, 1_000_000])
def test_fast_path_matches_reference(tiny_cross_encoder, n_docs, budget):
    fast = Reranker(tiny_cross_encoder, "tiny", token_budget=budget).score(QUERY, DOCS[:n_docs])
    ref = _reference(tiny_cross_encoder, QUERY, DOCS[:n_docs])
    assert fast.shape == (n_docs,)
    np.testing.assert_allclose(fast, ref, atol=1e-4)


def test_fast_path_matches_reference_with_custom_instruction(reranker, tiny_cross_encoder):
    instruction = "Given a Milvus FAQ question, judge whether the passage answers it"
    fast = reranker.score(QUERY, DOCS, instruction=instruction)
    np.testing.assert_allclose(fast, _reference(tiny_cross_encoder, QUERY, DOCS, instruction), atol=1e-4)


def test_instruction_changes_scores(reranker):
    default = reranker.score(QUERY, DOCS)
    custom = reranker.score(QUERY, DOCS, instruction="Judge whether the passage is written in Spanish")
    assert np.abs(default - custom).max() > 1e-4


def test_scores_are_probabilities(reranker):
    scores = reranker.score(QUERY, DOCS)
    assert scores.dtype == np.float32 and ((scores > 0) & (scores < 1)).all()


def test_batches_respect_the_token_budget(reranker):
    budget_reranker = Reranker(reranker.cross_encoder, "tiny", token_budget=300)
    batches = budget_reranker._batches(QUERY, DOCS)
    assert sorted(i for b in batches for i in b) == list(range(len(DOCS)))
    assert len(batches) > 1


def test_rerank_sorts_and_cuts(reranker):
    scores = reranker.score(QUERY, DOCS)
    passages = [Passage(id=f"p{i}", text=d, score=float(i)) for i, d in enumerate(DOCS)]
    ranked = reranker.rerank(QUERY, passages, top_n=3)
    order = list(np.argsort(-scores, kind="stable")[:3])
    assert [p.id for p in ranked] == [f"p{i}" for i in order]
    assert [p.rerank_score for p in ranked] == pytest.approx([float(scores[i]) for i in order])
    assert [p.score for p in ranked] == [float(i) for i in order], "the retrieval score is kept"


def test_long_documents_are_capped_and_keep_the_suffix(tiny_cross_encoder):
    ce = tiny_cross_encoder
    old = ce.max_seq_length
    try:
        ce.max_seq_length = 96
        features = ce.preprocess([(QUERY, "word " * 2000)])
        ids = features["input_ids"][0].tolist()
        suffix = ce.tokenizer.encode(SUFFIX, add_special_tokens=False)
        prefix = ce.tokenizer.encode(PREFIX, add_special_tokens=False)
        assert len(ids) <= 96
        assert ids[-len(suffix) :] == suffix, "the assistant suffix must survive truncation"
        assert ids[: len(prefix)] == prefix
    finally:
        ce.max_seq_length = old
