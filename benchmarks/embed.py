"""Embedding throughput: the tutorial's loop, sentence-transformers' own batched encode, helpers' Embedder."""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import GPU_PEAK_BF16, RANDOM_LABEL, Peak, sync
from benchmarks.corpus import faq_passages, synthetic
from helpers.embedding import Embedder
from helpers.models import MINILM_ID, RANDOM_06B_EMBEDDER_ID, TINY_EMBEDDER_ID, ModelLoadError, load_embedder


def _flops_per_token(model, seq: float) -> float:
    """2 x non-embedding parameters, plus attention score and value products at this sequence length."""
    cfg = model[0].model.config
    params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n)
    attn = 4 * cfg.num_hidden_layers * seq * cfg.num_attention_heads * getattr(cfg, "head_dim", 64)
    return 2 * params + attn


LOOP_SAMPLE = 2000  # a one-chunk-per-call loop's rate does not depend on corpus size
SMOKE_TEXTS = 12


def _rate(texts: list[str], seconds: float, tokens: int) -> dict:
    return {
        "seconds": round(seconds, 3),
        "chunks_per_s": round(len(texts) / seconds, 1),
        "tokens_per_s": round(tokens / seconds, 1),
    }


def compare(
    st,
    model_id: str,
    texts: list[str],
    device: str,
    batch_sizes: tuple[int, ...],
    st_batch_sizes: tuple[int, ...] = (16, 32, 64),
) -> dict:
    """Time the tutorial's loop, sentence-transformers' batched encode and helpers' Embedder on `texts`.

    The tutorial's loop runs on the whole corpus up to LOOP_SAMPLE chunks, else on a seeded sample
    of that size; the batched path always runs on everything, once per batch size.
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

    loop_peak = Peak(device)
    with loop_peak.measure():
        t = time.perf_counter()
        loop = np.vstack([st.encode([text]) for text in sample])  # the tutorial: one call per chunk
        sync(device)
        loop_s = time.perf_counter() - t
    loop_rate = _rate(sample, loop_s, count(sample))

    runs = {}
    for bs in batch_sizes:
        emb = Embedder(st, model_id, batch_size=bs)
        emb.encode_documents(texts[: 2 * bs])  # warm-up at this batch shape
        sync(device)
        peak = Peak(device)
        with peak.measure():
            t = time.perf_counter()
            fast = emb.encode_documents(texts)
            sync(device)
            seconds = time.perf_counter() - t
        runs[bs] = (seconds, peak.growth, fast)  # growth is known only once the block has exited
    # The fair baseline: sentence-transformers' own batched call (it sorts by length too), best batch size.
    baseline = {}
    for bs in st_batch_sizes:
        st.encode_document(texts[: 2 * bs], batch_size=bs, show_progress_bar=False)  # warm-up
        sync(device)
        t = time.perf_counter()
        base = st.encode_document(
            texts, batch_size=bs, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        sync(device)
        baseline[bs] = (time.perf_counter() - t, base)
    st_best = min(baseline, key=lambda bs: baseline[bs][0])
    best = min(runs, key=lambda bs: runs[bs][0])
    fast_s, fast_growth, fast = runs[best]
    # Padding the best run computed and threw away: what packing without padding could save at most.
    lengths = [
        len(ids) for ids in st.tokenizer(texts, truncation=True, max_length=st.max_seq_length)["input_ids"]
    ]
    padded = sum(lengths[b[0]] * len(b) for b in Embedder(st, model_id, batch_size=best).batches(texts))
    fast_cmp = fast[pick] if pick is not None else fast
    loop_n = loop / np.linalg.norm(loop, axis=1, keepdims=True)
    cosine = np.sum(loop_n.astype(np.float64) * fast_cmp.astype(np.float64), axis=1)
    row = {
        "chunks": len(texts),
        "tokens": int(tokens),
        "loop": {
            **loop_rate,
            "chunks_timed": len(sample),
            "peak_growth_mb": round(loop_peak.growth / 2**20, 1),
        },
        "fast": {
            **_rate(texts, fast_s, tokens),
            "batch_size": best,
            "padding_fraction": round(1 - sum(lengths) / padded, 4),
            "peak_growth_mb": round(fast_growth / 2**20, 1),
        },
        "fast_by_batch_size": {str(bs): _rate(texts, r[0], tokens) for bs, r in runs.items()},
        "baseline_st_encode": {
            **_rate(texts, baseline[st_best][0], tokens),
            "batch_size": st_best,
            "tokens_per_s_by_batch_size": {
                str(bs): round(tokens / sec, 1) for bs, (sec, _) in baseline.items()
            },
        },
        "speedup_vs_st_encode": round(baseline[st_best][0] / fast_s, 3),
        "min_cosine_vs_st_encode": float(
            np.sum(fast.astype(np.float64) * baseline[st_best][1].astype(np.float64), axis=1).min()
        ),
        "speedup": round((tokens / fast_s) / loop_rate["tokens_per_s"], 3),  # token throughput ratio
        "memory_ratio": round(fast_growth / loop_peak.growth, 3) if loop_peak.growth else None,
        "max_abs_diff": float(np.abs(loop_n - fast_cmp).max()),
        "min_cosine": float(cosine.min()),
    }
    if device.startswith("cuda"):
        import torch

        name = torch.cuda.get_device_name(0)
        peak_flops = next((v for k, v in GPU_PEAK_BF16.items() if k in name), None)
        if peak_flops:
            flops = _flops_per_token(st, tokens / len(texts))
            row["fast"]["mfu"] = round(tokens / fast_s * flops / peak_flops, 4)
            row["loop"]["mfu"] = round(loop_rate["tokens_per_s"] * flops / peak_flops, 4)
    return row


def run(settings, device: str, quick: bool, only: str = "", smoke: bool = False) -> dict:
    """Benchmark the offline kit's embedder and the Qwen3-0.6B architecture (random weights).

    `smoke`: SMOKE_TEXTS FAQ passages, batches of 4, the tiny Qwen3 stand-in in place of the 0.6B shape.
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
        else {f"Qwen3-0.6B architecture ({RANDOM_LABEL})": RANDOM_06B_EMBEDDER_ID}
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
            sizes_to_try = (4,) if smoke else (64, 256, 1024) if gpu else (settings.embed_batch_size,)
            st_sizes = (4, 8) if smoke else (64, 128, 256, 512) if gpu else (16, 32, 64)
            results[label]["corpora"][name] = compare(st, model_id, texts, device, sizes_to_try, st_sizes)
        del st
    return {"corpus": corpus_name, "models": results}
