"""The reranker: one prompt template against the model card's, the library fast path against the card's
full-vocabulary code, ordering, truncation."""

from __future__ import annotations

import numpy as np
import pytest
from reference_reranker import CARD_PREFIX, CARD_SUFFIX, card_prompt, reference_scores

from helpers.chunking import Passage
from helpers.rerank import CHAT_TEMPLATE, PREFIX, SUFFIX, Reranker, render

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
INSTRUCTIONS = [None, "", "Find answers"]


@pytest.fixture(scope="module")
def reranker(tiny_cross_encoder) -> Reranker:
    return Reranker(tiny_cross_encoder, "stand-in/tiny-qwen3-reranker", is_stand_in=True)


def _reference(ce, query, docs, instruction=None):
    return reference_scores(ce.model, ce.tokenizer, query, docs, instruction)


def test_the_prompt_pieces_are_the_model_cards():
    assert (PREFIX, SUFFIX) == (CARD_PREFIX, CARD_SUFFIX)


@pytest.mark.parametrize("instruction", INSTRUCTIONS)
def test_render_is_the_model_cards_prompt(instruction):
    assert render("q?", "d.\nwith lines", instruction) == card_prompt("q?", "d.\nwith lines", instruction)


@pytest.mark.parametrize("instruction", INSTRUCTIONS)
def test_the_tokenizer_renders_the_template_to_the_model_cards_prompt(tiny_cross_encoder, instruction):
    """The template as transformers renders it, and as the CrossEncoder tokenizes it."""
    messages = [{"role": "query", "content": QUERY}, {"role": "document", "content": DOCS[0]}]
    task = {"instruction": "Given a web search query, retrieve relevant passages that answer the query"}
    kwargs = task if instruction is None else {"instruction": instruction}
    rendered = tiny_cross_encoder.tokenizer.apply_chat_template(
        messages, chat_template=CHAT_TEMPLATE, tokenize=False, **kwargs
    )
    assert rendered == card_prompt(QUERY, DOCS[0], instruction)
    features = tiny_cross_encoder.preprocess([(QUERY, DOCS[0])], processing_kwargs={"chat_template": kwargs})
    expected = tiny_cross_encoder.tokenizer.encode(
        card_prompt(QUERY, DOCS[0], instruction), add_special_tokens=False
    )
    assert features["input_ids"][0].tolist() == expected


@pytest.mark.parametrize("n_docs", [1, 2, 5, 7])
@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_fast_path_matches_the_model_card(tiny_cross_encoder, n_docs, batch_size):
    fast = Reranker(tiny_cross_encoder, "tiny", batch_size=batch_size).score(QUERY, DOCS[:n_docs])
    assert fast.shape == (n_docs,)
    np.testing.assert_allclose(fast, _reference(tiny_cross_encoder, QUERY, DOCS[:n_docs]), atol=1e-4)


@pytest.mark.parametrize(
    "instruction", ["", "Given a Milvus FAQ question, judge whether the passage answers it"]
)
def test_fast_path_matches_the_model_card_with_an_instruction(reranker, tiny_cross_encoder, instruction):
    fast = reranker.score(QUERY, DOCS, instruction=instruction)
    np.testing.assert_allclose(fast, _reference(tiny_cross_encoder, QUERY, DOCS, instruction), atol=1e-4)


def test_instruction_changes_scores(reranker):
    default = reranker.score(QUERY, DOCS)
    custom = reranker.score(QUERY, DOCS, instruction="Judge whether the passage is written in Spanish")
    assert np.abs(default - custom).max() > 1e-4


def test_scores_are_probabilities(reranker):
    scores = reranker.score(QUERY, DOCS)
    assert scores.dtype == np.float32 and ((scores > 0) & (scores < 1)).all()
    assert reranker.score(QUERY, []).shape == (0,)


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
