"""Measure retrieval: recall@k, MRR@10 and nDCG@10 per strategy, per language, with stage latencies.

Labels are strings: a passage is relevant to a question when its text contains one of the
question's `relevant` strings (the exact FAQ question heading), so the labels survive any chunker.
Metrics are computed by `ranx`; this module only builds its qrels and runs.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.config import Settings
from helpers.data import chunk_documents, load_corpus
from helpers.models import STAND_IN_LABEL, ModelChoice
from helpers.passage import Passage
from helpers.pipeline import RAG
from helpers.store import connect

STRATEGIES = ("dense", "rerank", "bm25", "hybrid", "hybrid+rerank")
UNRERANKED = ("dense", "bm25", "hybrid")
METRICS = ("recall@1", "recall@3", "recall@5", "recall@10", "mrr@10", "ndcg@10")
_BASE_MODE = {
    "dense": "dense",
    "rerank": "dense",
    "bm25": "bm25",
    "hybrid": "hybrid",
    "hybrid+rerank": "hybrid",
}


# A progress hook wraps an iterator: progress(items, total, label) yields the items
# (helpers.notebook.progress is one).
Progress = Callable[[Iterable, int, str], Iterator]


class EvalDataError(ValueError):
    """The questions file is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Question:
    """One labelled question: its text, language and the strings that mark relevant passages."""

    query: str
    lang: str
    relevant: tuple[str, ...]
    line: int

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
        if not raw.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise EvalDataError(f"{where}: not valid JSON ({exc.msg}).") from None
        if not isinstance(obj, dict):
            raise EvalDataError(f"{where}: expected a JSON object with query, lang and relevant.")
        query, lang, relevant = obj.get("query"), obj.get("lang", "en"), obj.get("relevant")
        if not isinstance(query, str) or not query.strip():
            raise EvalDataError(f"{where}: 'query' must be a non-empty string.")
        if not isinstance(lang, str) or not lang:
            raise EvalDataError(f"{where}: 'lang' must be a language code such as 'en'.")
        if (
            not isinstance(relevant, list)
            or not relevant
            or not all(isinstance(r, str) and r for r in relevant)
        ):
            raise EvalDataError(f"{where}: 'relevant' must be a non-empty list of non-empty strings.")
        questions.append(Question(query.strip(), lang, tuple(relevant), n))
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
    """Mean and per-question values of `metrics` with ranx; per-question values keyed by question id.

    Questions absent from the run score 0. ranx's `return_mean=False` arrays come in sorted-id order
    (q1, q10, q11, ..., q2), not in the order of your questions, so they are read by id here: ranx keeps
    them per id in the run's `scores`.
    """
    from ranx import Qrels, Run, evaluate

    ranx_run = Run(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's type-safety chatter
        evaluate(Qrels(qrels), ranx_run, list(metrics), make_comparable=True)
    per_query = {m: {qid: float(v) for qid, v in ranx_run.scores[m].items()} for m in metrics}
    means = {m: float(np.mean(list(per_query[m].values()))) for m in metrics}
    return means, per_query


def _ranked_to_run(ids: list[str]) -> dict[str, float]:
    # Rank-based scores: ranx sorts by score, and this keeps each strategy's own order exactly.
    return {doc: float(len(ids) - rank) for rank, doc in enumerate(ids)}


def run_strategy(
    rag: RAG,
    strategy: str,
    questions: list[Question],
    k: int = 10,
    instruction: str | None = None,
    progress: Progress | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
    """Run one strategy over all questions; return the ranx run and per-stage latencies (ms).

    `progress(items, total, label)`, when given, wraps the question loop (a notebook's progress line).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy {strategy!r}: use any of {', '.join(STRATEGIES)}.")
    mode = _BASE_MODE[strategy]
    reranker = rag.reranker(_reranker_kind(rag)) if strategy.endswith("rerank") else None
    run: dict[str, dict[str, float]] = {}
    latency: dict[str, list[float]] = defaultdict(list)
    items = questions if progress is None else progress(questions, len(questions), f"{strategy}: questions")
    for q in items:
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
        run[q.qid] = _ranked_to_run(ids)
    return run, dict(latency)


def _reranker_kind(rag: RAG) -> str:
    """The trained reranker where the kit has one (Qwen3, or served); else the random stand-in."""
    return "stand-in" if rag.resolve_reranker("auto") == "none" else "qwen3"


def default_strategies(rag: RAG) -> tuple[str, ...]:
    """Every strategy when a trained reranker runs; without one, the three that need no reranker.

    A random stand-in's "reranked" rows would only measure noise; ask for them with `strategies`.
    """
    return UNRERANKED if rag.resolve_reranker("auto") == "none" else STRATEGIES


def _percentiles(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(values, 50)), 2),
        "p95": round(float(np.percentile(values, 95)), 2),
    }


def evaluate_strategies(
    rag: RAG,
    questions: list[Question],
    chunks: list[Passage],
    strategies: tuple[str, ...] = STRATEGIES,
    k: int = 10,
    instruction: str | None = None,
    progress: Progress | None = None,
) -> dict:
    """Metrics per strategy (overall and per language) and latency percentiles per stage."""
    qrels = build_qrels(questions, chunks)
    judged = [q for q in questions if q.qid in qrels]
    unjudged = [q for q in questions if q.qid not in qrels]
    if not judged:
        raise EvalDataError(
            "No question's `relevant` strings occur in any passage: wrong corpus for these questions?"
        )
    by_lang: dict[str, list[str]] = defaultdict(list)
    for q in judged:
        by_lang[q.lang].append(q.qid)
    out: dict = {"strategies": {}, "per_language": {lang: {} for lang in sorted(by_lang)}, "latency_ms": {}}
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
        out["latency_ms"][name] = {stage: _percentiles(v) for stage, v in latency.items()}
    out["n_queries"] = len(judged)
    out["languages"] = {lang: len(qids) for lang, qids in sorted(by_lang.items())}
    if unjudged:
        out["unjudged"] = [f"line {q.line}: {q.query}" for q in unjudged]
    return out


@contextmanager
def scratch_index(settings: Settings) -> Iterator[Callable[[str], Settings]]:
    """Where `run_eval` indexes: a temporary Milvus Lite file, or temporary collections on a server.

    Yields `place(name)`, the settings for one scratch collection; everything is removed at the end,
    so an evaluation leaves nothing behind in the user's Milvus.
    """
    tag = uuid.uuid4().hex[:8]
    made: list[Settings] = []
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:

        def place(name: str) -> Settings:
            where = {} if not settings.is_lite else {"milvus_uri": str(Path(tmp) / "eval.db")}
            made.append(settings.with_overrides(collection=f"eval_{tag}_{name}", **where))
            return made[-1]

        try:
            yield place
        finally:
            if not settings.is_lite and made:
                client = connect(settings.milvus_uri, settings.milvus_token)
                for s in made:
                    client.drop_collection(s.collection)
                client.close()


def run_eval(
    queries: str | Path,
    settings: Settings,
    choice: ModelChoice,
    corpus: str = "milvus-faq",
    chunker: str = "markdown",
    strategies: tuple[str, ...] | None = None,
    k: int = 10,
    instruction: str | None = None,
    dims: tuple[int, ...] = (),
    instructions: tuple[str, ...] = (),
    ablation_strategies: tuple[str, ...] | None = None,
    progress: Progress | None = None,
) -> dict:
    """The whole evaluation behind `python -m helpers eval`, including the optional ablations.

    The corpus is indexed into a scratch collection (`scratch_index`), removed at the end.
    `instructions` holds ablation settings: `none` (no instruction, for the embedder and the reranker
    alike), `default`, or a custom task. `ablation_strategies` limits the ablations to some strategies
    (default: `strategies`, which defaults to `default_strategies`). `progress(items, total, label)`
    wraps each question loop.
    """
    questions = load_questions(queries)
    loaded = load_corpus(corpus, settings)
    chunks = chunk_documents(loaded.documents, chunker)
    if not build_qrels(questions, chunks):  # before anything is embedded
        raise EvalDataError(_no_labels(queries, loaded.name, loaded.origin))
    # The corpus once more for ingest, by the name it resolved to: a fallback is announced only once.
    corpus = "sample" if loaded.name == "sample" else corpus
    with scratch_index(settings) as place:
        rag = RAG(place("full"), choice)
        opened = [rag]
        strategies = strategies or default_strategies(rag)
        ablation_strategies = ablation_strategies or strategies
        try:
            rag.ingest(corpus, chunker, progress=False)
            report = {
                "models": choice.as_dict(),
                "corpus": loaded.name,
                "chunker": chunker,
                "k": k,
                **evaluate_strategies(rag, questions, chunks, strategies, k, instruction, progress),
                "embedding_dim": rag.embedder.dim,
            }
            ablations: dict = {}
            for setting in instructions:
                value = {"none": "", "default": None}.get(setting, setting)
                res = evaluate_strategies(rag, questions, chunks, ablation_strategies, k, value, progress)
                ablations.setdefault("instruction", {})[setting] = res["strategies"]
            for dim in dims:
                per_dim = ablations.setdefault("dims", {})
                if dim > rag.embedder.full_dim:
                    per_dim[str(dim)] = {
                        "skipped": f"{rag.embedder.model_id} has {rag.embedder.full_dim} dims"
                    }
                    continue
                # The same loaded models, vectors cut to `dim`, in a scratch collection of their own.
                sub = RAG(
                    place(f"d{dim}"), choice, embedder=rag.embedder.with_dim(dim), rerankers=rag.rerankers
                )
                opened.append(sub)
                sub.ingest(corpus, chunker, progress=False)
                res = evaluate_strategies(
                    sub, questions, chunks, ablation_strategies, k, instruction, progress
                )
                per_dim[str(dim)] = res["strategies"]
        finally:
            for r in opened:
                r.close()  # before the scratch file goes
    if ablations:
        report["ablations"] = ablations
    return report


def _no_labels(queries: str | Path, corpus: str, origin: str) -> str:
    """Why no question can be scored, and which questions file fits the corpus that was loaded."""
    head = f"No question in {queries} has a relevant passage in the corpus {corpus!r} ({origin})"
    if corpus == "sample":
        return (
            f"{head}: the Milvus docs archive is not available, so the sample corpus was used. Evaluate it "
            "with --queries data/eval/sample_questions.jsonl, or set MILVUS_DOCS_ZIP to the archive for "
            "the FAQ questions."
        )
    return f"{head}: are these questions written for this corpus?"


def format_report(report: dict) -> str:
    """Plain-text tables for the terminal."""
    import pandas as pd

    lines = [
        f"Corpus: {report['corpus']} ({report['chunker']} chunker), {report['n_queries']} questions, "
        f"k={report['k']}, embedding dim {report['embedding_dim']}",
        f"Models: {report['models']}",
        "",
        pd.DataFrame(report["strategies"]).T[list(METRICS)].to_string(),
    ]
    rerankers = {m["reranker"] for m in report["strategies"].values() if "reranker" in m}
    lines += [f"Reranker of the *rerank rows: {r}" for r in sorted(rerankers)]
    per_language = pd.DataFrame(
        {lang: {s: v["mrr@10"] for s, v in d.items()} for lang, d in report["per_language"].items()}
    ).T
    per_language.insert(0, "questions", pd.Series(report["languages"]))
    lines += [
        "",
        "Per language (MRR@10; a language with a few questions is an anecdote):",
        per_language.to_string(),
        "",
        "Latency per stage, ms (p50 / p95):",
    ]
    for name, stages in report["latency_ms"].items():
        cells = ", ".join(f"{st} {v['p50']:.1f} / {v['p95']:.1f}" for st, v in stages.items())
        lines.append(f"  {name}: {cells}")
    for kind, settings in report.get("ablations", {}).items():
        lines += ["", f"Ablation over {kind} (MRR@10 / recall@10):"]
        for setting, per_strategy in settings.items():
            if "skipped" in per_strategy:
                lines.append(f"  {setting}: skipped ({per_strategy['skipped']})")
                continue
            cells = ", ".join(f"{s} {m['mrr@10']:.3f}/{m['recall@10']:.3f}" for s, m in per_strategy.items())
            lines.append(f"  {setting}: {cells}")
    if report.get("unjudged"):
        lines += ["", f"Not scored (no passage contains their labels): {len(report['unjudged'])}"]
    return "\n".join(lines)
