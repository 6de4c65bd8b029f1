"""The command line's `eval`: the corpus indexed in scratch collections, every strategy and ablation scored.

The metrics themselves are `helpers.evaluate`'s (notebook 06); this module runs them the way
`python -m helpers eval` does and formats the report for the terminal.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers.chunking import chunk_documents, load_corpus
from helpers.config import Settings
from helpers.evaluate import (
    METRICS,
    EvalDataError,
    build_qrels,
    default_strategies,
    evaluate_strategies,
    load_questions,
)
from helpers.pipeline import RAG
from helpers.setup import ModelChoice
from helpers.store import connect


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
    progress: bool = False,
) -> dict:
    """The whole evaluation behind `python -m helpers eval`, including the optional ablations.

    The corpus is indexed into a scratch collection (`scratch_index`), removed at the end.
    `instructions` holds ablation settings: `none` (no instruction, for the embedder and the reranker
    alike), `default`, or a custom task. `ablation_strategies` limits the ablations to some strategies
    (default: `strategies`, which defaults to `default_strategies`). `progress`: tqdm bars on stderr.
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
