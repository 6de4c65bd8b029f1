"""End-to-end `ask` latency per stage over 20 questions."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import RANDOM_LABEL
from benchmarks.corpus import QUESTIONS
from helpers.pipeline import RAG
from helpers.setup import choose_models

SMOKE_QUESTIONS = 2


def run(settings, device: str, quick: bool, only: str = "", smoke: bool = False) -> dict:
    """The offline kit with the stand-in reranker (so every stage runs) and the extractive fallback.

    `quick`: 5 questions; `smoke`: SMOKE_QUESTIONS.
    """
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings.with_overrides(
            milvus_uri=str(Path(tmp) / "ask.db"), openai_api_key="", openai_base_url=""
        )
        rag = RAG(settings, choose_models(settings))
        rag.ingest(progress=False)
        questions = QUESTIONS[: SMOKE_QUESTIONS if smoke else 5 if quick else None]
        rag.ask(questions[0], reranker="stand-in")  # warm-up: loads the reranker
        stages: dict[str, list[float]] = {}
        for q in questions:
            result = rag.ask(q, top_k=10, top_n=3, retrieval="hybrid", reranker="stand-in")
            for stage, ms in result.timings_ms.items():
                stages.setdefault(stage, []).append(ms)
        rag.close()
    summary = {
        s: {"p50": round(float(np.percentile(v, 50)), 2), "p95": round(float(np.percentile(v, 95)), 2)}
        for s, v in stages.items()
    }
    return {
        "questions": len(questions),
        "models": rag.choice.as_dict(),
        "reranker": RANDOM_LABEL,
        "generation": "extractive fallback (no LLM endpoint)",
        "latency_ms": summary,
    }
