"""Reranking: the model card's full-vocabulary reference against the CrossEncoder fast path.

The reference is the card's own code (tests/reference_reranker.py); the fast path is helpers' `Reranker`,
which is the library's batched call, `CrossEncoder.predict` (the last position's logits only).
"""

from __future__ import annotations

import numpy as np
from reference_reranker import CARD_PREFIX, CARD_SUFFIX, format_instruction, reference_scores

from benchmarks.common import RANDOM_LABEL, Peak, available_memory, best_of, sync
from benchmarks.corpus import QUESTIONS, faq_passages
from benchmarks.models import random_06b
from helpers.offline.standins import TINY_RERANKER_ID
from helpers.rerank import Reranker, load_reranker

# What the reference's forward pass holds besides its logits (activations, attention scores, allocator
# slack), as a fraction of the logits: a run is attempted only when logits x (1 + MARGIN) fit.
MARGIN = 0.25
SMOKE_CANDIDATES = 4


def reference_logits_bytes(model, tokenizer, query: str, docs: list[str], max_length: int = 8192) -> int:
    """Bytes of the logits `reference_scores` keeps: pairs x longest padded length x vocabulary x dtype.

    The batch is tokenized as the reference tokenizes it: prefix + truncated pair + suffix, padded to the
    longest; the vocabulary is the LM head's output width and the element size that of the model's dtype.
    """
    import torch

    prefix = tokenizer.encode(CARD_PREFIX, add_special_tokens=False)
    suffix = tokenizer.encode(CARD_SUFFIX, add_special_tokens=False)
    pairs = tokenizer(
        [format_instruction(None, query, d) for d in docs],
        truncation="longest_first",
        max_length=max_length - len(prefix) - len(suffix),
    )["input_ids"]
    longest = len(prefix) + max(len(p) for p in pairs) + len(suffix)
    vocab = model.get_output_embeddings().weight.shape[0]
    return len(docs) * longest * vocab * torch.empty((), dtype=model.dtype).element_size()


def reference_skip_reason(
    model, tokenizer, query: str, docs: list[str], device: str, available: int | None = None
) -> str | None:
    """Why the full-vocabulary reference cannot run on these pairs here, or None when it fits in memory.

    `available` (bytes) defaults to what `available_memory(device)` reports now.
    """
    need = reference_logits_bytes(model, tokenizer, query, docs)
    free = available_memory(device) if available is None else available
    if need * (1 + MARGIN) <= free:
        return None
    dtype = str(model.dtype).removeprefix("torch.")
    return (
        f"reference needs {need / 1e9:.1f} GB of {dtype} logits for {len(docs)} pairs "
        f"({need * (1 + MARGIN) / 1e9:.1f} GB with a {MARGIN:.0%} margin); {free / 1e9:.1f} GB available"
    )


def compare(ce, model_id: str, docs: list[str], device: str, repeats: int, batch_size: int = 16) -> dict:
    """Score the same (question, passage) pairs both ways; throughput, peak memory, agreement.

    Skipped, with the reason, when the reference's full-vocabulary logits do not fit in memory.
    """
    query = QUESTIONS[0]
    skip = reference_skip_reason(ce.model, ce.tokenizer, query, docs, device)
    if skip is not None:
        return {"candidates": len(docs), "skipped": skip}
    reranker = Reranker(ce, model_id, batch_size=batch_size)
    reference_scores(ce.model, ce.tokenizer, query, docs[:2])  # warm-up
    reranker.score(query, docs[:2])
    sync(device)

    # The fast path runs first: memory an earlier run leaves behind can only flatter the reference.
    fast_peak = Peak(device)
    with fast_peak.measure():
        fast_s, fast = best_of(lambda: reranker.score(query, docs), repeats, device)
    ref_peak = Peak(device)
    with ref_peak.measure():
        ref_s, ref = best_of(lambda: reference_scores(ce.model, ce.tokenizer, query, docs), repeats, device)
    lengths = [len(ce.tokenizer(d)["input_ids"]) for d in docs]
    return {
        "candidates": len(docs),
        "passage_tokens_mean": round(float(np.mean(lengths)), 1),
        "reference": {
            "seconds": round(ref_s, 4),
            "pairs_per_s": round(len(docs) / ref_s, 2),
            "peak_growth_mb": round(ref_peak.growth / 2**20, 1),
        },
        "fast": {
            "call": "CrossEncoder.predict",
            "batch_size": batch_size,
            "seconds": round(fast_s, 4),
            "pairs_per_s": round(len(docs) / fast_s, 2),
            "peak_growth_mb": round(fast_peak.growth / 2**20, 1),
        },
        "speedup": round(ref_s / fast_s, 3),
        "memory_ratio": round(fast_peak.growth / ref_peak.growth, 3) if ref_peak.growth else None,
        "max_abs_diff": float(np.abs(np.asarray(ref, dtype=np.float64) - fast).max()),
        "repeats": repeats,
    }


def run(settings, device: str, quick: bool, only: str = "", smoke: bool = False) -> dict:
    """Tiny stand-in and the Qwen3-0.6B architecture (random weights), 10 and 100 candidates.

    `smoke`: the tiny stand-in only, on SMOKE_CANDIDATES candidates.
    """
    faq, corpus_name = faq_passages(settings)
    by_length = sorted(faq, key=len, reverse=True)
    results = {}
    gpu = device.startswith("cuda")
    models = {f"tiny stand-in ({RANDOM_LABEL})": TINY_RERANKER_ID}
    if not smoke:
        models[f"Qwen3-0.6B architecture ({RANDOM_LABEL})"] = random_06b("reranker", settings)
    for label, model_id in models.items():
        ce = load_reranker(model_id, settings)
        results[label] = {
            "model": model_id,
            "dtype": str(ce.model.dtype),
            "vocab_size": ce.model.config.vocab_size,
            "candidates": {},
        }
        for n in (SMOKE_CANDIDATES,) if smoke else (10, 100):
            if "0.6B" in label and quick and not gpu:
                results[label]["candidates"][str(n)] = {"skipped": "--quick on a CPU: minutes per pass"}
                continue
            docs = [by_length[i % len(by_length)] for i in range(n)]  # the FAQ's longest passages first
            repeats = 1 if quick or smoke or ("0.6B" in label and not gpu) else 3
            results[label]["candidates"][str(n)] = compare(
                ce, model_id, docs, device, repeats, settings.rerank_batch_size
            )
        del ce
    return {"corpus": corpus_name, "models": results}
