"""Served models: embedding throughput through a server against in-process, and what HTTP adds to `ask`.

One machine, one model, one corpus. The server is Infinity (from .venv-infinity, started here on
127.0.0.1, sharing the machine's cores with this process); the model is the offline kit's
all-MiniLM-L6-v2, the only real embedder available offline. The in-process baseline is
sentence-transformers' own batched `encode`, the best a user would otherwise write, plus helpers'
`Embedder` (which makes that same call). `ask` compares the same pipeline with the models in-process
and served (the tiny Qwen3 reranker stand-in, converted for the server: timing only, its scores mean
nothing).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from model_server import infinity_server
from qwen3_replicas import as_sequence_classifier

from benchmarks.common import best_of, percentiles
from benchmarks.corpus import QUESTIONS, faq_passages, synthetic
from helpers.config import ROOT
from helpers.embedding import Embedder, load_embedder
from helpers.offline.standins import MINILM_ID, TINY_RERANKER_ID, model_path
from helpers.pipeline import RAG
from helpers.remote import RemoteEmbedder, embedding_endpoint
from helpers.setup import choose_models

SMOKE_TEXTS, SMOKE_QUESTIONS = 12, 2


def _infinity() -> str:
    exe = os.environ.get("RAG_INFINITY") or str(ROOT / ".venv-infinity" / "bin" / "infinity_emb")
    if not Path(exe).is_file():
        raise SystemExit(f"{exe} is missing: run `make infinity` first (or set RAG_INFINITY).")
    return exe


def _throughput(st, settings, url: str, texts: list[str], tokens: int, device: str, repeats: int) -> dict:
    st.encode(texts[:8])  # warm-up
    endpoint = embedding_endpoint(settings.with_overrides(embedding_url=url), MINILM_ID)
    # Built outside the timed calls: the served embedder's dimension probe is a request of its own.
    embedder = Embedder(st, MINILM_ID)
    served = {n: RemoteEmbedder(endpoint, batch_size=n) for n in (32, 128)}
    runs = {}
    for name, fn in {
        "st.encode batch 32 (in-process)": lambda: st.encode(texts, batch_size=32, normalize_embeddings=True),
        "helpers Embedder (in-process)": lambda: embedder.encode_documents(texts),
        "served, requests of 32": lambda: served[32].encode_documents(texts),
        "served, requests of 128": lambda: served[128].encode_documents(texts),
    }.items():
        seconds, vectors = best_of(fn, repeats, device)
        runs[name] = {
            "seconds": round(seconds, 3),
            "passages_per_s": round(len(texts) / seconds, 1),
            "tokens_per_s": round(tokens / seconds, 1),
            "vectors": np.asarray(vectors, dtype=np.float32),
        }
    base = runs["st.encode batch 32 (in-process)"]
    reference = base["vectors"]
    for row in runs.values():
        row["speedup_vs_st_encode"] = round(base["seconds"] / row["seconds"], 3)
        row["max_abs_diff_vs_st_encode"] = float(np.abs(row.pop("vectors") - reference).max())
    return runs


def _ask_latency(settings, url: str, questions: list[str]) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, overrides, reranker in (
            ("in-process", {}, "stand-in"),
            (
                "served",
                {
                    "embedding_url": url,
                    "rerank_url": url,
                    "embedding_model": MINILM_ID,
                    "reranker_model": TINY_RERANKER_ID,
                },
                "qwen3",
            ),
        ):
            s = settings.with_overrides(
                milvus_uri=str(Path(tmp) / f"{label}.db"), openai_api_key="", openai_base_url="", **overrides
            )
            rag = RAG(s, choose_models(s))
            rag.ingest("milvus-faq", progress=False)
            rag.ask(questions[0], reranker=reranker, retrieval="hybrid")  # warm-up: loads or connects
            stages: dict[str, list[float]] = {}
            for q in questions:
                result = rag.ask(q, top_k=10, top_n=3, retrieval="hybrid", reranker=reranker)
                for stage, ms in result.timings_ms.items():
                    stages.setdefault(stage, []).append(ms)
            rag.close()
            out[label] = {stage: percentiles(v) for stage, v in stages.items()}
    return out


def run(settings, device: str, quick: bool, only: str = "", smoke: bool = False) -> dict:
    """Throughput over the FAQ (and 2,000 synthetic passages unless quick), then `ask` per stage.

    `smoke`: SMOKE_TEXTS passages timed once, SMOKE_QUESTIONS questions.
    """
    settings = settings.with_overrides(models="offline", device="cpu")
    faq, corpus = faq_passages(settings)
    if smoke:
        inputs = {corpus: faq[:SMOKE_TEXTS]}
    else:
        inputs = {corpus: faq} if quick else {corpus: faq, "synthetic 2k": synthetic(faq, 2000)}
    questions = QUESTIONS[: SMOKE_QUESTIONS if smoke else 5 if quick else None]
    with tempfile.TemporaryDirectory() as tmp:
        cache = settings.cache_dir
        reranker = as_sequence_classifier(Path(model_path(TINY_RERANKER_ID, cache)), Path(tmp) / "seq-cls")
        models = {MINILM_ID: Path(model_path(MINILM_ID, cache)), TINY_RERANKER_ID: reranker}
        with infinity_server(_infinity(), models, home=Path(tmp) / "home") as url:
            st = load_embedder(MINILM_ID, settings)
            throughput = {}
            for name, texts in inputs.items():
                tokens = sum(len(ids) for ids in st.tokenizer(texts)["input_ids"])
                throughput[name] = {
                    "passages": len(texts),
                    "tokens": tokens,
                    **_throughput(st, settings, url, texts, tokens, "cpu", 1 if smoke else 3),
                }
            ask = _ask_latency(settings, url, questions)
    return {
        "server": "Infinity 0.0.78 (infinity_emb v2, torch engine, CPU, float32) on 127.0.0.1, same machine",
        "embedding": MINILM_ID,
        "reranker": f"{TINY_RERANKER_ID} (random weights; timing only)",
        "throughput": throughput,
        "ask_latency_ms": ask,
    }
