"""The Qwen3-Reranker model card's scoring code, as the card writes it: the reranker's outside reference.

Test support (the benchmarks use it too), never course code: it asks the model for logits at every position
and for every vocabulary entry, then keeps two numbers. Its prompt strings are the card's, typed here, so a
test that compares them with `helpers.rerank` compares the course with the card, not with itself.
"""

from __future__ import annotations

import warnings

import numpy as np

CARD_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    "Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
CARD_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
CARD_TASK = "Given a web search query, retrieve relevant passages that answer the query"


def format_instruction(instruction: str | None, query: str, doc: str) -> str:
    """The card's `format_instruction`: the user turn for one pair."""
    if instruction is None:
        instruction = CARD_TASK
    return f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}"


def card_prompt(query: str, doc: str, instruction: str | None = None) -> str:
    """The whole text the card's code feeds the model for one pair."""
    return CARD_PREFIX + format_instruction(instruction, query, doc) + CARD_SUFFIX


def reference_scores(
    model, tokenizer, query: str, documents: list[str], instruction: str | None = None, max_length: int = 8192
) -> np.ndarray:
    """P("yes") per document, computed as the model card does (full-vocabulary logits at every position)."""
    import torch

    pairs = [format_instruction(instruction, query, doc) for doc in documents]
    prefix_tokens = tokenizer.encode(CARD_PREFIX, add_special_tokens=False)
    suffix_tokens = tokenizer.encode(CARD_SUFFIX, add_special_tokens=False)
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
