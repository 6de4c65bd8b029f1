"""Embedding throughput: the tutorial's one-text-per-call loop, the library's own batched encode, the course.

The baseline is sentence-transformers' `encode_document` at its best batch size (it sorts texts by length
and batches them). helpers' `Embedder` (the course path) calls that same method: on a GPU with the batch size,
on a CPU in batches of texts of about one token length (`helpers.embedding.token_batches`), because there a
pad token costs as much as a real one. `course_vs_loop` compares it with the loop; each timing also has its
process CPU seconds, which a machine shared with other work disturbs less than wall time.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import GPU_PEAK_BF16, RANDOM_LABEL, Peak, best_of, sync
from benchmarks.corpus import faq_passages, synthetic
from benchmarks.models import random_06b
from helpers.embedding import Embedder, load_embedder
from helpers.offline.standins import MINILM_ID, TINY_EMBEDDER_ID
from helpers.setup import ModelLoadError


def _flops_per_token(model, seq: float) -> float:
    """2 x non-embedding parameters, plus attention score and value products at this sequence length."""
    cfg = model[0].model.config
    params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n)
    attn = 4 * cfg.num_hidden_layers * seq * cfg.num_attention_heads * getattr(cfg, "head_dim", 64)
    return 2 * params + attn


LOOP_SAMPLE = 2000  # a one-chunk-per-call loop's rate does not depend on corpus size
SMOKE_TEXTS = 12


def _rate(texts: list[str], seconds: float, tokens: int, cpu_s: float | None = None) -> dict:
    return {
        "seconds": round(seconds, 3),
        **({"cpu_seconds": round(cpu_s, 3)} if cpu_s is not None else {}),
        "chunks_per_s": round(len(texts) / seconds, 1),
        "tokens_per_s": round(tokens / seconds, 1),
    }


def _timed(fn, device: str) -> tuple[float, int, np.ndarray, float]:
    """Seconds, peak memory growth (bytes), output and process CPU seconds of one call of `fn`."""
    peak = Peak(device)
    with peak.measure():
        t, cpu = time.perf_counter(), time.process_time()
        out = fn()
        sync(device)
        seconds, cpu_s = time.perf_counter() - t, time.process_time() - cpu
    return seconds, peak.growth, out, cpu_s  # growth is known only once the block has exited


def compare(
    st, model_id: str, texts: list[str], device: str, batch_sizes: tuple[int, ...], repeats: int = 2
) -> dict:
    """Time the tutorial's loop, the library's batched `encode_document` and helpers' Embedder on `texts`.

    The tutorial's loop runs once, on the whole corpus up to LOOP_SAMPLE chunks, else on a seeded sample
    of that size; the batched call runs once on everything per batch size in `batch_sizes`: `speedup`
    compares these single passes. For the Embedder's cost, it and the library call at the best batch size
    then run `repeats` times each, alternately (so a slow spell of the machine hits both), and each keeps
    its fastest time.
    """
    count = lambda xs: sum(len(ids) for ids in st.tokenizer(xs)["input_ids"])  # noqa: E731
    tokens = count(texts)
    pick = (
        np.random.default_rng(0).choice(len(texts), LOOP_SAMPLE, replace=False)
        if len(texts) > LOOP_SAMPLE
        else None
    )
    sample = [texts[i] for i in pick] if pick is not None else texts
    st.encode(texts[:2])  # warm-up: kernels, caches
    sync(device)

    # The tutorial: one call per chunk.
    loop_s, loop_growth, loop, loop_cpu = _timed(
        lambda: np.vstack([st.encode([text]) for text in sample]), device
    )
    loop_rate = _rate(sample, loop_s, count(sample), loop_cpu)

    def library(bs: int):
        return lambda: st.encode_document(
            texts, batch_size=bs, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )

    # The fair baseline: sentence-transformers' own batched call (it sorts by length too), best batch size.
    runs = {}
    for bs in batch_sizes:
        st.encode_document(texts[: 2 * bs], batch_size=bs, show_progress_bar=False)  # warm-up at this shape
        sync(device)
        runs[bs] = _timed(library(bs), device)
    best = min(runs, key=lambda bs: runs[bs][0])
    lib_s, lib_growth, lib, lib_cpu = runs[best]

    # helpers' Embedder, the course path: the same library call, batched by device (measured, not assumed).
    embedder = Embedder(st, model_id, batch_size=best)
    emb_s, emb_growth, emb, emb_cpu = _timed(lambda: embedder.encode_documents(texts), device)
    pair_lib_s = lib_s
    for _ in range(repeats):
        pair_lib_s = min(pair_lib_s, best_of(library(best), 1, device)[0])
        emb_s = min(emb_s, best_of(lambda: embedder.encode_documents(texts), 1, device)[0])

    lib_cmp = lib[pick] if pick is not None else lib
    loop_n = loop / np.linalg.norm(loop, axis=1, keepdims=True)
    cosine = np.sum(loop_n.astype(np.float64) * lib_cmp.astype(np.float64), axis=1)
    row = {
        "chunks": len(texts),
        "tokens": int(tokens),
        "loop": {
            **loop_rate,
            "chunks_timed": len(sample),
            "peak_growth_mb": round(loop_growth / 2**20, 1),
        },
        "library": {
            **_rate(texts, lib_s, tokens, lib_cpu),
            "call": "SentenceTransformer.encode_document",
            "batch_size": best,
            "peak_growth_mb": round(lib_growth / 2**20, 1),
            "tokens_per_s_by_batch_size": {str(bs): round(tokens / r[0], 1) for bs, r in runs.items()},
        },
        "helpers_embedder": {
            **_rate(texts, emb_s, tokens, emb_cpu),
            "batching": f"batch_size {best}" if device.startswith("cuda") else "token_batches (CPU)",
            "peak_growth_mb": round(emb_growth / 2**20, 1),
            "repeats": 1 + repeats,
            "library_seconds_same_repeats": round(pair_lib_s, 3),
            "seconds_ratio_to_library": round(emb_s / pair_lib_s, 3),  # ~1: the same call
            "max_abs_diff_vs_library": float(np.abs(emb - lib).max()),
        },
        # The library's batched call against the tutorial's loop: token throughput, peak memory, agreement.
        "speedup": round((tokens / lib_s) / loop_rate["tokens_per_s"], 3),
        # The course path against the loop: wall time, and process CPU time per token.
        "course_vs_loop": round((tokens / emb_s) / loop_rate["tokens_per_s"], 3),
        "course_vs_loop_cpu": round((loop_cpu / count(sample)) / (emb_cpu / tokens), 3),
        "memory_ratio": round(lib_growth / loop_growth, 3) if loop_growth else None,
        "max_abs_diff": float(np.abs(loop_n - lib_cmp).max()),
        "min_cosine": float(cosine.min()),
    }
    if device.startswith("cuda"):
        import torch

        name = torch.cuda.get_device_name(0)
        peak_flops = next((v for k, v in GPU_PEAK_BF16.items() if k in name), None)
        if peak_flops:
            flops = _flops_per_token(st, tokens / len(texts))
            row["library"]["mfu"] = round(tokens / lib_s * flops / peak_flops, 4)
            row["loop"]["mfu"] = round(loop_rate["tokens_per_s"] * flops / peak_flops, 4)
    return row


def run(settings, device: str, quick: bool, only: str = "", smoke: bool = False) -> dict:
    """Benchmark the offline kit's embedder and the Qwen3-0.6B architecture (random weights).

    `smoke`: SMOKE_TEXTS FAQ passages, batches of 4 and 8, the tiny Qwen3 stand-in in place of the 0.6B shape.
    """
    faq, corpus_name = faq_passages(settings)
    sizes = {"faq": faq[:SMOKE_TEXTS] if smoke else faq}
    if not quick and not smoke:
        sizes["synthetic_1k"] = synthetic(faq, 1000)
        if device.startswith("cuda"):
            sizes["synthetic_10k"] = synthetic(faq, 10_000)
    if only:
        wanted = {f"synthetic_{x}" if x[0].isdigit() else x for x in only.split(",")}
        sizes = {k: v for k, v in sizes.items() if k in wanted}
    results = {}
    gpu = device.startswith("cuda")
    qwen3 = (
        {f"tiny Qwen3 stand-in ({RANDOM_LABEL})": TINY_EMBEDDER_ID}
        if smoke
        else {f"Qwen3-0.6B architecture ({RANDOM_LABEL})": random_06b("embedding", settings)}
    )
    for label, model_id in {"offline kit (all-MiniLM-L6-v2)": MINILM_ID, **qwen3}.items():
        try:
            st = load_embedder(model_id, settings)
        except ModelLoadError as exc:  # e.g. the offline kit's package is not installed on a GPU box
            results[label] = {"model": model_id, "skipped": str(exc)}
            continue
        cfg = st[0].model.config
        results[label] = {
            "model": model_id,
            "dtype": str(next(st.parameters()).dtype),
            "config": {k: getattr(cfg, k, None) for k in ("num_hidden_layers", "hidden_size", "vocab_size")},
            "corpora": {},
        }
        for name, texts in sizes.items():
            if "0.6B" in label and not gpu and (quick or name != "faq"):
                continue  # on 2 CPU cores the 0.6B model needs minutes per pass: full runs only, FAQ only
            batch_sizes = (4, 8) if smoke else (64, 128, 256, 512, 1024) if gpu else (16, 32, 64)
            repeats = 1 if smoke or ("0.6B" in label and not gpu) else 2  # 0.6B on a CPU: minutes a pass
            results[label]["corpora"][name] = compare(st, model_id, texts, device, batch_sizes, repeats)
        del st
    return {"corpus": corpus_name, "models": results}
