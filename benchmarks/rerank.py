"""Reranking: the model card's full-vocabulary reference against the CrossEncoder fast path."""

from __future__ import annotations

import numpy as np

from benchmarks.common import RANDOM_LABEL, Peak, best_of, sync
from benchmarks.corpus import QUESTIONS, faq_passages
from helpers.models import RANDOM_06B_RERANKER_ID, TINY_RERANKER_ID, load_reranker
from helpers.rerank import Reranker, reference_scores


def compare(ce, model_id: str, docs: list[str], device: str, repeats: int) -> dict:
    """Score the same (question, passage) pairs both ways; throughput, peak memory, agreement."""
    query = QUESTIONS[0]
    reranker = Reranker(ce, model_id)
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
            "seconds": round(fast_s, 4),
            "pairs_per_s": round(len(docs) / fast_s, 2),
            "peak_growth_mb": round(fast_peak.growth / 2**20, 1),
        },
        "speedup": round(ref_s / fast_s, 3),
        "memory_ratio": round(fast_peak.growth / ref_peak.growth, 3) if ref_peak.growth else None,
        "max_abs_diff": float(np.abs(np.asarray(ref, dtype=np.float64) - fast).max()),
        "repeats": repeats,
    }


def run(settings, device: str, quick: bool, only: str = "") -> dict:
    """Tiny stand-in and the Qwen3-0.6B architecture (random weights), 10 and 100 candidates."""
    faq, corpus_name = faq_passages(settings)
    by_length = sorted(faq, key=len, reverse=True)
    results = {}
    gpu = device.startswith("cuda")
    models = {
        f"tiny stand-in ({RANDOM_LABEL})": TINY_RERANKER_ID,
        f"Qwen3-0.6B architecture ({RANDOM_LABEL})": RANDOM_06B_RERANKER_ID,
    }
    for label, model_id in models.items():
        ce = load_reranker(model_id, settings)
        results[label] = {
            "model": model_id,
            "dtype": str(ce.model.dtype),
            "vocab_size": ce.model.config.vocab_size,
            "candidates": {},
        }
        for n in (10, 100):
            if "0.6B" in label and quick and not gpu:
                results[label]["candidates"][str(n)] = {"skipped": "--quick on a CPU: minutes per pass"}
                continue
            if n == 100 and "0.6B" in label and not gpu:
                # The reference keeps logits for 100 x ~300 positions x 151,669 entries: ~18 GB in fp32.
                results[label]["candidates"]["100"] = {
                    "skipped": "reference needs ~18 GB of fp32 logits on CPU"
                }
                continue
            docs = [by_length[i % len(by_length)] for i in range(n)]  # the FAQ's longest passages first
            results[label]["candidates"][str(n)] = compare(
                ce, model_id, docs, device, 1 if quick or ("0.6B" in label and not gpu) else 3
            )
        del ce
    return {"corpus": corpus_name, "models": results}
