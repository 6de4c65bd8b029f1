"""Reranking (notebook 04): Qwen3-Reranker, a causal LM asked "does this document answer the query?".

The score is P("yes"), a softmax over the "yes" and "no" logits at the last position; `CrossEncoder` computes
it (sigmoid of their difference) in length-sorted batches. It needs one thing from us: `CHAT_TEMPLATE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from helpers.chunking import Passage
from helpers.config import DEFAULT_QUERY_TASK, Settings
from helpers.setup import load_model

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

# The model card's prompt: a system turn, a user turn with the instruction, the query and the document,
# and the start of an assistant turn with an empty "thinking" block, so the very next token is the answer.
PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
# sentence-transformers passes a (query, document) pair as messages with the roles `query` and `document`;
# the instruction is a template variable, given at prediction time.
CHAT_TEMPLATE = (
    "{%- set query = messages | selectattr('role', 'eq', 'query') | map(attribute='content') | first -%}"
    "{%- set document = messages | selectattr('role', 'eq', 'document') | map(attribute='content') "
    "| first -%}"
    + PREFIX
    + "<Instruct>: {{ instruction }}\n<Query>: {{ query }}\n<Document>: {{ document }}"
    + SUFFIX
    + "{# Jinja drops a template's last newline; this comment keeps the suffix whole #}"
)


def render(query: str, document: str, instruction: str | None = None) -> str:
    """The whole text the reranker reads for one pair: `CHAT_TEMPLATE` rendered as transformers renders it."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(CHAT_TEMPLATE)
    messages = [{"role": "query", "content": query}, {"role": "document", "content": document}]
    return template.render(
        messages=messages, instruction=DEFAULT_QUERY_TASK if instruction is None else instruction
    )


def load_reranker(model_id: str, settings: Settings, hub: bool | None = None) -> CrossEncoder:
    """A Qwen3-style causal-LM reranker as a sentence-transformers `CrossEncoder` with `CHAT_TEMPLATE`."""
    from sentence_transformers import CrossEncoder

    kwargs = {"max_length": settings.rerank_max_length, "processor_kwargs": {"chat_template": CHAT_TEMPLATE}}
    return load_model("reranker", model_id, settings, CrossEncoder, hub, **kwargs)


def rank(passages: Sequence[Passage], scores, top_n: int | None = None) -> list[Passage]:
    """The `top_n` passages with `rerank_score` set, most relevant first (ties keep input order)."""
    order = sorted(range(len(passages)), key=lambda i: (-scores[i], i))
    return [replace(passages[i], rerank_score=float(scores[i])) for i in order[:top_n]]


class Ranker:
    """What every reranker does with its `score`: order passages. Subclasses define `score`."""

    model_id: str
    is_stand_in: bool

    def score(self, query: str, documents: list[str], instruction: str | None = None) -> np.ndarray:
        """Relevance for each document, in input order."""
        raise NotImplementedError

    def rerank(
        self,
        query: str,
        passages: Sequence[Passage],
        top_n: int | None = None,
        instruction: str | None = None,
    ) -> list[Passage]:
        """The `top_n` passages with their `rerank_score`, most relevant first (ties keep input order)."""
        return rank(passages, self.score(query, [p.text for p in passages], instruction), top_n)


class Reranker(Ranker):
    """A loaded `CrossEncoder` scoring (query, document) pairs with the model card's prompt."""

    def __init__(
        self, cross_encoder: CrossEncoder, model_id: str, batch_size: int = 16, is_stand_in: bool = False
    ):
        self.cross_encoder = cross_encoder
        self.model_id = model_id
        self.batch_size = batch_size
        self.is_stand_in = is_stand_in

    def score(self, query: str, documents: list[str], instruction: str | None = None) -> np.ndarray:
        """P("yes") for each document, in input order; `instruction=None` is the model card's default task."""
        import torch

        if not documents:
            return np.zeros(0, dtype=np.float32)
        task = {"instruction": DEFAULT_QUERY_TASK if instruction is None else instruction}
        kwargs = {
            "batch_size": self.batch_size,
            "show_progress_bar": False,
            "activation_fn": torch.nn.Sigmoid(),
        }
        scores = self.cross_encoder.predict(
            [(query, d) for d in documents], processing_kwargs={"chat_template": task}, **kwargs
        )
        return np.asarray(scores, dtype=np.float32).reshape(-1)
