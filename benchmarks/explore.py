"""The explorer's speed (notebook 07): time from a question to its table, per strategy and all together.

Each labelled question goes through `explore` and the HTML table the widget shows, after a warm-up. The
offline kit has no trained reranker, so `reranked` is timed on the Qwen3-0.6B shape (`--only
qwen3-0.6b-shape`, random weights: timing only), whose embedder also answers the other strategies there.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import RANDOM_LABEL
from benchmarks.models import random_06b
from helpers.chunking import find_archive
from helpers.evaluate import load_questions
from helpers.explore import explore
from helpers.pipeline import RAG
from helpers.setup import QUESTIONS, choose_models

QUESTIONS_PER_CASE, QUICK_QUESTIONS, SMOKE_QUESTIONS, WARM_UP = 30, 10, 2, 3
UNRERANKED = ("dense", "bm25", "hybrid")


def cases(reranks: bool) -> dict[str, tuple[str, ...]]:
    """Each strategy alone, then every strategy the explorer offers together."""
    strategies = (*UNRERANKED, "reranked") if reranks else UNRERANKED
    return {**{s: (s,) for s in strategies}, "all together": strategies}


def time_case(rag: RAG, questions, strategies: tuple[str, ...]) -> dict:
    """p50/p95 ms from a question to its HTML table, over `questions` after WARM_UP untimed ones."""
    for q in questions[:WARM_UP]:
        explore(rag, q.query, strategies, relevant=q.relevant)._repr_html_()
    ms = []
    for q in questions[WARM_UP:]:
        start = time.perf_counter()
        explore(rag, q.query, strategies, relevant=q.relevant)._repr_html_()
        ms.append((time.perf_counter() - start) * 1000)
    return {"questions": len(ms), **{f"p{p}": round(float(np.percentile(ms, p)), 1) for p in (50, 95)}}


def run(settings, device: str, quick: bool, only: str = "", smoke: bool = False) -> dict:
    """The offline kit, or the Qwen3-0.6B shape; `quick`: 10 questions a case, `smoke`: 2 and tiny models."""
    corpus = "milvus-faq" if find_archive(settings, download=False)[0] else "sample"
    n = SMOKE_QUESTIONS if smoke else QUICK_QUESTIONS if quick else QUESTIONS_PER_CASE
    questions = load_questions(QUESTIONS[corpus])
    questions = (questions * -(-(n + WARM_UP) // len(questions)))[: n + WARM_UP]  # repeat a short file
    with tempfile.TemporaryDirectory() as tmp:
        # A new question each time: the vector cache off, so every query is embedded by the model.
        settings = settings.with_overrides(milvus_uri=str(Path(tmp) / "explore.db"), embed_cache=False)
        if only == "qwen3-0.6b-shape":
            shape = {k: random_06b(k, settings) for k in ("embedding", "reranker")}
            settings = settings.with_overrides(
                models="qwen3", embedding_model=shape["embedding"], reranker_model=shape["reranker"]
            )
        choice = choose_models(settings)
        if smoke:  # the reranked path too, with the tiny stand-in (as the qwen3 kit would rerank)
            choice = dataclasses.replace(choice, kit="qwen3", trained_reranker=choice.reranker_model)
        rag = RAG(settings, choice)
        rag.ingest(corpus, progress=False)
        reranks = rag.resolve_reranker("auto") != "none"
        timings = {name: time_case(rag, questions, s) for name, s in cases(reranks).items()}
        rag.close()
    kit = "Qwen3-0.6B shape, " + RANDOM_LABEL if only else choice.as_dict()["embedding"]
    note = "" if reranks else "offline kit: no trained reranker, so `reranked` is not offered"
    return {"kit": kit, "corpus": corpus, "device": device, "latency_ms": timings, "note": note}
