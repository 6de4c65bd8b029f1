"""Qwen3-Reranker: a causal LM asked "does this document answer the query?", scored by P("yes").

Two implementations of the same maths:

* `reference_scores`: the model card's algorithm as written. It computes logits for every position
  and every one of the ~152k vocabulary entries, then keeps two numbers. Clear, and the test oracle.
* `Reranker` (the fast path): sentence-transformers' `CrossEncoder`, which asks the model for the
  last position's logits only (`logits_to_keep=1`) and returns logit("yes") - logit("no"); the
  sigmoid of that difference *is* the two-way softmax P("yes"). Pairs are sorted by length and
  packed into batches under a token budget, and inputs are capped at `max_length` tokens.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from helpers.config import DEFAULT_RERANK_TASK
from helpers.embedding import pack_by_length
from helpers.passage import Passage

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

SYSTEM_PROMPT = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
PREFIX = f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n"
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def format_pair(query: str, document: str, instruction: str | None = None) -> str:
    """The user turn of the model card: `<Instruct>: …\\n<Query>: …\\n<Document>: …`.

    `instruction=None` uses the default task; `""` leaves the `<Instruct>` line out (no instruction,
    as `Embedder.encode_queries` embeds a bare query for `""`).
    """
    task = DEFAULT_RERANK_TASK if instruction is None else instruction
    head = f"<Instruct>: {task}\n" if task else ""
    return f"{head}<Query>: {query}\n<Document>: {document}"


def full_prompt(query: str, document: str, instruction: str | None = None) -> str:
    """The whole text the reranker reads for one pair: system prefix, user turn, assistant suffix."""
    return PREFIX + format_pair(query, document, instruction) + SUFFIX


def split_prompt(query: str, document: str, instruction: str | None = None) -> tuple[str, str]:
    """`full_prompt` cut in two before `<Document>`: what a rerank server gets as query and as document.

    A server that scores Qwen3-Reranker as a sequence classifier (vLLM, Infinity) joins the two texts
    without a separator, so the model reads exactly `full_prompt`.
    """
    prompt = full_prompt(query, document, instruction)
    cut = len(prompt) - len(f"<Document>: {document}{SUFFIX}")
    return prompt[:cut], prompt[cut:]


def rank(passages: Sequence[Passage], scores, top_n: int | None = None) -> list[Passage]:
    """The `top_n` passages with `rerank_score` set, most relevant first (ties keep input order)."""
    order = sorted(range(len(passages)), key=lambda i: (-scores[i], i))
    return [replace(passages[i], rerank_score=float(scores[i])) for i in order[:top_n]]


def _jinja_literal(text: str) -> str:
    """`text` as a Jinja expression that prints it verbatim, whitespace control on both sides.

    PREFIX and SUFFIX hold newlines and quotes; written into the template as raw text, Jinja would trim
    the suffix's final newline (`keep_trailing_newline` is off in transformers), changing the prompt.
    """
    return '{{- "' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '" -}}'


# Renders sentence-transformers' (query, document) messages into exactly `full_prompt(...)`. The
# instruction arrives as a template variable, processing_kwargs={"chat_template": {"instruction": ...}}:
# undefined or none means the default task, "" no <Instruct> line, as in `format_pair`.
RERANK_CHAT_TEMPLATE = (
    "{%- set ns = namespace(query='', document='') -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'query' -%}{%- set ns.query = message['content'] -%}"
    "{%- elif message['role'] == 'document' -%}{%- set ns.document = message['content'] -%}"
    "{%- endif -%}{%- endfor -%}"
    + _jinja_literal(PREFIX)
    + "{%- if instruction is not defined or instruction is none -%}"
    + _jinja_literal(f"<Instruct>: {DEFAULT_RERANK_TASK}\n")
    + "{%- elif instruction -%}<Instruct>: {{ instruction }}{{- '\\n' -}}{%- endif -%}"
    + "<Query>: {{ ns.query }}\n<Document>: {{ ns.document }}"
    + _jinja_literal(SUFFIX)
)


def reference_scores(
    model,
    tokenizer,
    query: str,
    documents: list[str],
    instruction: str | None = None,
    max_length: int = 8192,
) -> np.ndarray:
    """P("yes") per document, computed as the Qwen3-Reranker model card does (full-vocabulary logits)."""
    import torch

    pairs = [format_pair(query, doc, instruction) for doc in documents]
    prefix_tokens = tokenizer.encode(PREFIX, add_special_tokens=False)
    suffix_tokens = tokenizer.encode(SUFFIX, add_special_tokens=False)
    inputs = tokenizer(
        pairs,
        padding=False,
        truncation="longest_first",
        return_attention_mask=False,
        max_length=max_length - len(prefix_tokens) - len(suffix_tokens),
    )
    for i, ids in enumerate(inputs["input_ids"]):
        inputs["input_ids"][i] = prefix_tokens + ids + suffix_tokens
    with warnings.catch_warnings():  # the card passes max_length with padding=True; transformers warns
        warnings.simplefilter("ignore", UserWarning)
        inputs = tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=max_length)
    inputs = {k: v.to(model.device) for k, v in inputs.items()}
    token_true_id = tokenizer.convert_tokens_to_ids("yes")
    token_false_id = tokenizer.convert_tokens_to_ids("no")
    with torch.no_grad():
        batch_scores = model(**inputs).logits[:, -1, :]  # logits of every position, every vocab entry
        true_vector = batch_scores[:, token_true_id]
        false_vector = batch_scores[:, token_false_id]
        batch_scores = torch.stack([false_vector, true_vector], dim=1)
        batch_scores = torch.nn.functional.log_softmax(batch_scores, dim=1)
        return batch_scores[:, 1].exp().float().cpu().numpy()


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
    """The fast path: a `CrossEncoder` over the model card prompt, batched by a token budget."""

    def __init__(
        self,
        cross_encoder: CrossEncoder,
        model_id: str,
        token_budget: int = 16384,
        is_stand_in: bool = False,
    ):
        self.cross_encoder = cross_encoder
        self.model_id = model_id
        self.token_budget = token_budget
        self.is_stand_in = is_stand_in
        self._overhead = len(cross_encoder.tokenizer.encode(full_prompt("", ""), add_special_tokens=False))

    @property
    def max_length(self) -> int:
        """Inputs longer than this many tokens are truncated (the prompt's suffix is kept)."""
        return int(self.cross_encoder.max_seq_length)

    def _batches(self, query: str, documents: list[str]) -> list[list[int]]:
        """Indices grouped longest-first so that (longest length x batch size) stays under the budget."""
        tok = self.cross_encoder.tokenizer
        q_len = len(tok.encode(query, add_special_tokens=False))
        lengths = [
            min(self.max_length, self._overhead + q_len + len(tok.encode(d, add_special_tokens=False)))
            for d in documents
        ]
        return pack_by_length(lengths, self.token_budget)

    def score(self, query: str, documents: list[str], instruction: str | None = None) -> np.ndarray:
        """P("yes") for each document, in input order."""
        import torch

        scores = np.zeros(len(documents), dtype=np.float32)
        kwargs = {"chat_template": {"instruction": instruction}}
        for batch in self._batches(query, documents):
            out = self.cross_encoder.predict(
                [(query, documents[i]) for i in batch],
                batch_size=len(batch),
                activation_fn=torch.nn.Sigmoid(),
                show_progress_bar=False,
                processing_kwargs=kwargs,
            )
            scores[batch] = np.asarray(out, dtype=np.float32).reshape(-1)
        return scores
