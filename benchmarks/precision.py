"""Precision variants: fp32 against bf16 and dynamic int8, their speed and agreement with fp32.

Serving engines trade precision for speed. Whether that pays depends on the machine (bf16 on a CPU
is fast only with avx512_bf16 or AMX) and on the model (int8 activations are quantised with one
scale per tensor, which costs more on models with outlier activations). fp32, bf16 and fp16 load
through `helpers.embedding.load_embedder` / `helpers.rerank.load_reranker` with the `dtype` setting
(`RAG_DTYPE`) as a user would set it; int8 (CPU only, not a course setting) loads in fp32 and is then
quantised by `benchmarks.models.quantize_int8`. For the offline kit's embedder, the one model here
with trained weights, retrieval quality on the labelled questions is measured too.

No full-vocabulary reference runs here (every variant scores through the CrossEncoder fast path, which
keeps the last position's logits only), so no run needs sizing against the available memory.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import RANDOM_LABEL, best_of, native_bf16
from benchmarks.models import quantize_int8, random_06b
from helpers.chunking import chunk_documents, load_corpus
from helpers.config import DATA_DIR
from helpers.embedding import Embedder, load_embedder
from helpers.evaluate import build_qrels, compute_metrics, load_questions
from helpers.offline.standins import MINILM_ID, TINY_EMBEDDER_ID, TINY_RERANKER_ID
from helpers.rerank import Reranker, load_reranker
from helpers.setup import ModelLoadError

QUALITY_METRICS = ("recall@1", "recall@10", "mrr@10")
INVARIANCE_SAMPLE = 8  # texts embedded one at a time to check batch invariance
SMOKE_CHUNKS = 12  # --smoke: the first chunks of the FAQ (and the questions they answer)
SMOKE_CANDIDATES = 4


def variants(device: str) -> tuple[str, ...]:
    """The dtypes worth comparing on this device (int8 dynamic quantisation is CPU-only)."""
    return ("float32", "bfloat16", "int8") if device == "cpu" else ("float32", "bfloat16", "float16")


def load_variant(kind: str, model_id: str, settings, dtype: str):
    """The embedder (a SentenceTransformer) or reranker (a CrossEncoder) in `dtype`.

    float32 / bfloat16 / float16: the `dtype` setting. int8: loaded in float32 on the CPU, then every
    Linear but the LM head quantised in place (`quantize_int8`).
    """
    int8 = dtype == "int8"
    variant = (
        settings.with_overrides(dtype="float32", device="cpu")
        if int8
        else settings.with_overrides(dtype=dtype)
    )
    if kind == "embedding":
        model = load_embedder(model_id, variant)
        if int8:
            quantize_int8(model[0].model)  # the Transformer module's Hugging Face model
        return model
    model = load_reranker(model_id, variant)
    if int8:
        quantize_int8(model.model)  # the causal LM; its LM head stays float32
    return model


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a.astype(np.float64) * b.astype(np.float64), axis=1)


def _quality(docs: np.ndarray, queries: np.ndarray, ids: list[str], questions, qrels) -> dict:
    """Exact inner-product search of every question over the passages, scored with ranx."""
    top = np.argsort(-(queries @ docs.T), axis=1)[:, :10]
    run = {
        q.qid: {ids[j]: float(10 - r) for r, j in enumerate(row)}
        for q, row in zip(questions, top, strict=True)
    }
    means, _ = compute_metrics(qrels, run, QUALITY_METRICS)
    return {m: round(v, 4) for m, v in means.items()}, top


def embed_model(settings, device: str, model_id: str, texts: list[str], labelled, repeats: int) -> dict:
    """Every variant of one embedder over `texts`; `labelled` = (questions, chunk ids, qrels) or None."""
    rows: dict[str, dict] = {}
    base: dict = {}
    for dtype in variants(device):
        try:
            emb = Embedder(load_variant("embedding", model_id, settings, dtype), model_id)
        except ModelLoadError as exc:
            return {"skipped": str(exc)}
        emb.encode_documents(texts[:2])  # warm-up
        seconds, vectors = best_of(lambda e=emb: e.encode_documents(texts), repeats, device)
        single = np.vstack([emb.encode_documents([t]) for t in texts[:INVARIANCE_SAMPLE]])
        row: dict = {
            "seconds": round(seconds, 3),
            "chunks_per_s": round(len(texts) / seconds, 2),
            "batch_vs_single_min_cosine": round(
                float(_cosines(single, vectors[:INVARIANCE_SAMPLE]).min()), 6
            ),
        }
        top = None
        if labelled is not None:
            questions, ids, qrels = labelled
            queries = emb.encode_queries([q.query for q in questions])
            row["quality"], top = _quality(vectors, queries, ids, questions, qrels)
        if dtype == "float32":
            base = {"seconds": seconds, "vectors": vectors, "top": top}
        else:
            cos = _cosines(base["vectors"], vectors)
            row.update(
                speedup=round(base["seconds"] / seconds, 3),
                min_cosine_to_fp32=round(float(cos.min()), 6),
                mean_cosine_to_fp32=round(float(cos.mean()), 6),
                max_abs_diff=float(np.abs(base["vectors"] - vectors).max()),
            )
            if top is not None:
                overlap = [len(set(a) & set(b)) / 10 for a, b in zip(base["top"], top, strict=True)]
                row["top10_overlap_with_fp32"] = round(float(np.mean(overlap)), 4)
        rows[dtype] = row
        del emb
    return {"model": model_id, "chunks": len(texts), "variants": rows}


def rerank_model(settings, device: str, model_id: str, query: str, docs: list[str], repeats: int) -> dict:
    """Every variant of one reranker over (query, doc) pairs: pairs/s and agreement of P(yes)."""
    from scipy.stats import kendalltau

    rows: dict[str, dict] = {}
    base: dict = {}
    for dtype in variants(device):
        reranker = Reranker(load_variant("reranker", model_id, settings, dtype), model_id)
        reranker.score(query, docs[:2])  # warm-up
        seconds, scores = best_of(lambda r=reranker: r.score(query, docs), repeats, device)
        row: dict = {"seconds": round(seconds, 3), "pairs_per_s": round(len(docs) / seconds, 2)}
        if dtype == "float32":
            base = {"seconds": seconds, "scores": scores}
        else:
            ref = base["scores"]
            row.update(
                speedup=round(base["seconds"] / seconds, 3),
                max_abs_diff=float(np.abs(ref.astype(np.float64) - scores).max()),
                kendall_tau_with_fp32=round(float(kendalltau(ref, scores).statistic), 4),
                same_top1=bool(np.argmax(ref) == np.argmax(scores)),
            )
        rows[dtype] = row
        del reranker
    return {"model": model_id, "candidates": len(docs), "variants": rows}


def run(settings, device: str, quick: bool, only: str = "", smoke: bool = False) -> dict:
    """fp32 / bf16 / int8 (CPU) for the embedders and rerankers, with agreement to fp32.

    `smoke`: SMOKE_CHUNKS chunks, SMOKE_CANDIDATES reranked pairs, no 0.6B shapes.
    """
    corpus = load_corpus("milvus-faq", settings)
    chunks = chunk_documents(corpus.documents)[: SMOKE_CHUNKS if smoke else None]
    texts = [c.text for c in chunks]
    qfile = (
        DATA_DIR
        / "eval"
        / ("milvus_faq_questions.jsonl" if corpus.name == "milvus-faq" else "sample_questions.jsonl")
    )
    questions = load_questions(qfile)
    qrels = build_qrels(questions, chunks)
    labelled = ([q for q in questions if q.qid in qrels], [c.id for c in chunks], qrels)
    small = 1 if device == "cpu" else 3  # repeats for the 0.6B shapes: minutes per pass on 2 cores
    repeats = 1 if quick or smoke else 3
    embedders = {
        "offline kit (all-MiniLM-L6-v2, trained weights)": (MINILM_ID, texts, labelled, repeats),
        f"tiny Qwen3 stand-in ({RANDOM_LABEL})": (TINY_EMBEDDER_ID, texts, None, repeats),
    }
    candidates = texts[: SMOKE_CANDIDATES if smoke else 10]
    rerankers = {f"tiny Qwen3 stand-in ({RANDOM_LABEL})": (TINY_RERANKER_ID, candidates, repeats)}
    if not quick and not smoke:
        # 16 passages / 10 candidates in corpus order: the ratios between variants are what matter here.
        embedders[f"Qwen3-0.6B architecture ({RANDOM_LABEL})"] = (
            random_06b("embedding", settings),
            texts[:16],
            None,
            small,
        )
        rerankers[f"Qwen3-0.6B architecture ({RANDOM_LABEL})"] = (
            random_06b("reranker", settings),
            texts[:10],
            small,
        )
    query = labelled[0][0].query
    return {
        "corpus": corpus.name,
        "questions": str(qfile.relative_to(DATA_DIR.parent)),
        "native_bf16": native_bf16() if device == "cpu" else None,
        "embed": {k: embed_model(settings, device, m, t, lab, r) for k, (m, t, lab, r) in embedders.items()},
        "rerank": {k: rerank_model(settings, device, m, query, d, r) for k, (m, d, r) in rerankers.items()},
    }
