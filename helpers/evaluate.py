"""Evaluation (notebook 06): recall@k, MRR@10, nDCG@10 by `ranx`, per strategy and language, and latencies.

A passage is relevant to a question when its text contains one of the question's `relevant` strings (the
exact FAQ heading), so the labels survive any chunker.
"""

from __future__ import annotations

import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from helpers.chunking import Passage
from helpers.config import BAR_FORMAT
from helpers.setup import STAND_IN_LABEL

if TYPE_CHECKING:
    from helpers.pipeline import RAG

STRATEGIES = ("dense", "rerank", "bm25", "hybrid", "hybrid+rerank")
UNRERANKED = ("dense", "bm25", "hybrid")
METRICS = ("recall@1", "recall@3", "recall@5", "recall@10", "mrr@10", "ndcg@10")


class EvalDataError(ValueError):
    """The questions file is malformed; the message names the file and line."""


class Question(BaseModel, frozen=True, str_strip_whitespace=True):
    """One labelled question: its text, language and the strings that mark relevant passages."""

    query: str = Field(min_length=1)
    lang: str = Field("en", min_length=1)
    relevant: tuple[Annotated[str, Field(min_length=1)], ...] = Field(min_length=1)
    line: int = 0

    @property
    def qid(self) -> str:
        """A stable id for ranx: the line number."""
        return f"q{self.line}"


def load_questions(path: str | Path) -> list[Question]:
    """Read a JSONL file of `{"query", "lang", "relevant"}` objects, with errors that name the line."""
    path = Path(path)
    if not path.is_file():
        raise EvalDataError(f"Questions file {path} does not exist.")
    questions = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            if raw.strip():
                questions.append(Question.model_validate_json(raw).model_copy(update={"line": n}))
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(map(str, error["loc"]))
            raise EvalDataError(f"{path}:{n}: {repr(field) + ': ' if field else ''}{error['msg']}.") from None
    if not questions:
        raise EvalDataError(f"{path} holds no questions.")
    return questions


def build_qrels(questions: list[Question], chunks: list[Passage]) -> dict[str, dict[str, int]]:
    """Relevant chunk ids per question: every chunk whose text contains one of its strings."""
    qrels = {}
    for q in questions:
        ids = {c.id: 1 for c in chunks if any(r in c.text for r in q.relevant)}
        if ids:
            qrels[q.qid] = ids
    return qrels


def compute_metrics(
    qrels: dict, run: dict, metrics=METRICS
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean and per-question values of `metrics` by ranx, the latter keyed by question id (absent: 0)."""
    from ranx import Qrels, Run, evaluate

    # `return_mean=False` gives arrays in sorted-id order (q1, q10, ..., q2); the run's `scores` are by id.
    ranx_run = Run(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's type-safety chatter
        evaluate(Qrels(qrels), ranx_run, list(metrics), make_comparable=True)
    per_query = {m: {qid: float(v) for qid, v in ranx_run.scores[m].items()} for m in metrics}
    means = {m: float(np.mean(list(per_query[m].values()))) for m in metrics}
    return means, per_query


def run_strategy(
    rag: RAG,
    strategy: str,
    questions: list[Question],
    k: int = 10,
    instruction: str | None = None,
    progress: bool = False,
) -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
    """Run one strategy over all questions (a tqdm bar with `progress`); the ranx run and stage latencies."""
    from tqdm.std import tqdm

    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy {strategy!r}: use any of {', '.join(STRATEGIES)}.")
    mode = strategy.removesuffix("rerank").removesuffix("+") or "dense"
    reranker = rag.reranker(_reranker_kind(rag)) if strategy.endswith("rerank") else None
    run: dict[str, dict[str, float]] = {}
    latency: dict[str, list[float]] = defaultdict(list)
    for q in tqdm(questions, desc=f"{strategy}: questions", bar_format=BAR_FORMAT, disable=not progress):
        stages: dict[str, float] = {}
        hits = rag.retrieve(q.query, mode, k, instruction, stages)
        for stage, ms in stages.items():
            latency[stage].append(ms)
        ids = [h.id for h in hits]
        if reranker is not None and hits:
            t = time.perf_counter()
            ranked = reranker.rerank(q.query, hits, instruction=instruction)
            latency["rerank"].append((time.perf_counter() - t) * 1000)
            ids = [p.id for p in ranked]
        run[q.qid] = {doc: float(len(ids) - rank) for rank, doc in enumerate(ids)}  # ranx keeps this order
    return run, dict(latency)


def _reranker_kind(rag: RAG) -> str:
    """The trained reranker where the kit has one (Qwen3, or served); else the random stand-in."""
    return "stand-in" if rag.resolve_reranker("auto") == "none" else "qwen3"


def default_strategies(rag: RAG) -> tuple[str, ...]:
    """Every strategy with a trained reranker; without one, those that need none (a stand-in's are noise)."""
    return UNRERANKED if rag.resolve_reranker("auto") == "none" else STRATEGIES


def evaluate_strategies(
    rag: RAG,
    questions: list[Question],
    chunks: list[Passage],
    strategies: tuple[str, ...] = STRATEGIES,
    k: int = 10,
    instruction: str | None = None,
    progress: bool = False,
) -> dict:
    """Metrics per strategy (overall and per language) and latency percentiles per stage."""
    qrels = build_qrels(questions, chunks)
    judged = [q for q in questions if q.qid in qrels]
    unjudged = [q for q in questions if q.qid not in qrels]
    if not judged:
        raise EvalDataError("No question's `relevant` strings occur in any passage: the wrong corpus?")
    by_lang = {lang: [q.qid for q in judged if q.lang == lang] for lang in sorted({q.lang for q in judged})}
    out: dict = {"strategies": {}, "per_language": {lang: {} for lang in by_lang}, "latency_ms": {}}
    for name in strategies:
        run, latency = run_strategy(rag, name, judged, k, instruction, progress)
        means, per_query = compute_metrics(qrels, run)
        entry = {m: round(v, 4) for m, v in means.items()}
        if name.endswith("rerank"):
            rr = rag.reranker(_reranker_kind(rag))
            entry["reranker"] = STAND_IN_LABEL if rr.is_stand_in else rr.model_id
        out["strategies"][name] = entry
        for lang, qids in by_lang.items():
            out["per_language"][lang][name] = {
                m: round(float(np.mean([per_query[m][qid] for qid in qids])), 4) for m in METRICS
            }
        out["latency_ms"][name] = {
            stage: {f"p{q}": round(float(np.percentile(v, q)), 2) for q in (50, 95)}
            for stage, v in latency.items()
        }
    out["n_queries"] = len(judged)
    out["languages"] = {lang: len(qids) for lang, qids in by_lang.items()}
    if unjudged:
        out["unjudged"] = [f"line {q.line}: {q.query}" for q in unjudged]
    return out
