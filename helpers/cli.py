"""The command line: `python -m helpers ingest|ask|eval`, and how each shows its results.

Settings and the model choice are resolved once, here, and passed down. Bad input exits 2, a failure on the
way 1, each with one last line on stderr: `error: ...`. The models banner and the notes on how the sources
were ranked are the CLI's: the pipeline returns results, this module decides how to show them.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import warnings
from contextlib import closing
from dataclasses import asdict

from helpers.chunking import CHUNKERS, DataError
from helpers.cli_eval import format_report, run_eval
from helpers.config import ConfigError, configure_process, get_settings
from helpers.evaluate import STRATEGIES, EvalDataError
from helpers.generate import LLMError
from helpers.pipeline import RAG, RERANKER_CHOICES, AskResult
from helpers.remote import ModelServerError
from helpers.setup import STAND_IN_LABEL, ModelChoice, ModelLoadError, choose_models
from helpers.store import SEARCH_MODES, StoreError

RETRIEVAL_LABELS = {
    "dense": "dense search (embeddings)",
    "bm25": "BM25 keyword search",
    "hybrid": "hybrid search (dense + BM25)",
}


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _choices(allowed: tuple[str, ...]):
    def parse(value: str) -> tuple[str, ...]:
        names = tuple(s.strip() for s in value.split(",") if s.strip())
        unknown = [s for s in names if s not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown) or value!r}; use {','.join(allowed)}"
            )
        return names

    return parse


def _dims(value: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in value.split(",") if d.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r}: use comma-separated whole numbers, e.g. 64,128"
        ) from None
    if not dims or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: dimensions must be at least 1")
    return dims


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit code 2, like other bad input
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = _Parser(prog="python -m helpers", description="Two-stage RAG over the Milvus FAQ.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    corpus = {"default": "milvus-faq", "help": "milvus-faq, sample, or a folder/zip PATH"}

    ing = sub.add_parser("ingest", help="chunk, embed and index a corpus")
    ing.add_argument("--corpus", **corpus)
    ing.add_argument("--chunker", choices=CHUNKERS, default="markdown")
    ing.add_argument("--rebuild", action="store_true", help="drop the collection and index from scratch")
    ing.add_argument("--json", action="store_true", help="print a JSON report")

    ask = sub.add_parser("ask", help="answer a question from the indexed corpus")
    ask.add_argument("question")
    ask.add_argument("--top-k", type=_positive, default=10, help="passages retrieved (default 10)")
    ask.add_argument("--top-n", type=_positive, default=3, help="passages kept after reranking (default 3)")
    ask.add_argument("--retrieval", choices=SEARCH_MODES, help="default: dense when reranking, else hybrid")
    help_rr = "auto: Qwen3 with the Qwen3 kit, none with the offline kit"
    ask.add_argument("--reranker", choices=RERANKER_CHOICES, default="auto", help=help_rr)
    ask.add_argument("--instruction", help="task instruction for query embedding and reranking")
    ask.add_argument("--json", action="store_true", help="print a JSON result")

    ev = sub.add_parser("eval", help="measure retrieval quality on labelled questions")
    ev.add_argument("--queries", required=True, help="JSONL file of {query, lang, relevant}")
    ev.add_argument("--corpus", **corpus)
    ev.add_argument("--chunker", choices=CHUNKERS, default="markdown")
    ev.add_argument("--k", type=_positive, default=10, help="candidates retrieved per question (default 10)")
    help_s = (
        f"comma-separated subset of {','.join(STRATEGIES)} (default: all when a trained reranker runs, "
        "else dense,bm25,hybrid: the random stand-in's rows would measure noise)"
    )
    ev.add_argument("--strategies", type=_choices(STRATEGIES), help=help_s)
    help_i = "ablation: comma-separated settings among none, default, or a custom instruction"
    ev.add_argument("--instruction", help=help_i)
    ev.add_argument("--dims", type=_dims, default=(), help="ablation: Matryoshka dims, e.g. 32,64,128,256")
    ev.add_argument("--json", action="store_true", help="print the JSON report")
    return parser


def banner(choice: ModelChoice) -> str:
    """A few lines for humans: which models run, why, and how to change it."""
    at = f" (served at {choice.embedding_url})" if choice.embedding_url else ""
    lines = [f"Models: {choice.kit} kit ({choice.reason})", f"  embedding: {choice.embedding_model}{at}"]
    if choice.kit == "offline":
        lines.append(f"  reranker:  {choice.reranker_model}: {STAND_IN_LABEL}, its scores mean nothing.")
        lines.append("  For the real Qwen3 models: go online once, set RAG_MODELS=qwen3.")
    elif choice.kit == "served" and not choice.rerank_url:
        lines.append("  reranker:  none by default (set RAG_RERANK_URL to rerank on the server)")
    else:
        at = f" (served at {choice.rerank_url})" if choice.rerank_url else ""
        lines.append(f"  reranker:  {choice.reranker_model}{at}")
        if choice.kit == "qwen3":
            lines.append("  For the small offline kit instead: RAG_MODELS=offline.")
    return "\n".join(lines)


def notes(result: AskResult, requested: str, rag: RAG, instruction: str | None) -> list[str]:
    """What a reader of the answer should know: how its sources were ranked, what was cut or ignored."""
    out = []
    if result.cut_from:
        out.append(
            f"The question has {result.cut_from:,} characters; only its first {len(result.question):,} are "
            "used "
            f"({rag.embedder.model_id} reads at most {rag.embedder.max_tokens} tokens)."
        )
    if result.reranker == "none" and requested == "auto" and rag.choice.kit == "offline":
        out.append(
            f"Offline kit: passages are ranked by {RETRIEVAL_LABELS[result.retrieval]}, without reranking; "
            "reranking needs the real Qwen3 reranker (RAG_MODELS=qwen3). Use --reranker stand-in to see the "
            "mechanics with random scores."
        )
    if result.reranker.endswith(STAND_IN_LABEL):
        out.append("The stand-in reranker has random weights: its order and scores mean nothing.")
    if instruction:
        used = "only the reranker used it" if result.reranker != "none" else "it changed nothing"
        if result.retrieval == "bm25":
            out.append(
                f"The instruction was not used for retrieval: BM25 retrieval does not read it; {used}."
            )
        elif not rag.embedder.instruction_aware:
            out.append(
                f"The instruction was not used for retrieval: {rag.embedder.model_id} is not "
                "instruction-aware, "
                f"so the query embedding ignores it; {used}."
            )
    return out


class _AskPrinter:
    """Prints `ask` as it goes: the sources once ranked, then one answer header, streamed or not."""

    def __init__(self, choice: ModelChoice):
        self.choice = choice
        self.streaming = False  # an "Answer (model):" header is printed and its line is open

    def sources(self, result: AskResult) -> None:
        print(banner(self.choice), file=sys.stderr, flush=True)
        print(f"\nQuestion: {result.question}")
        print(f"Retrieval: {result.retrieval}   reranker: {result.reranker}\n")
        for n, src in enumerate(result.sources, start=1):
            rerank = "" if src.rerank_score is None else f"  rerank P(yes)={src.rerank_score:.4f}"
            print(f"[{n}] score={src.score:.4f}{rerank}  {src.title}  ({src.source})")
            print(textwrap.indent(textwrap.shorten(src.text, 300, placeholder=" …"), "    "))

    def token(self, text: str, model: str) -> None:
        if not self.streaming:
            self.streaming = True
            print(f"\nAnswer ({model}):")
        print(text, end="", flush=True)

    def end_line(self) -> None:
        """Close a streamed answer's open line (also before an error, so the error stands alone)."""
        if self.streaming:
            self.streaming = False
            print(flush=True)

    def answer(self, result: AskResult, notes: list[str]) -> None:
        streamed = self.streaming
        self.end_line()
        extractive = result.answer_backend.startswith("extractive")
        if streamed and extractive:
            print("(the LLM's answer broke off; the best passage follows)")
        if not streamed or extractive:
            print(f"\nAnswer ({result.answer_backend}):\n{result.answer}")
        for note in notes:
            if note not in result.answer:  # an LLM failure is already in the extractive answer
                print(f"\nNote: {note}")
        print("\nTimings: " + ", ".join(f"{k} {v:.0f} ms" for k, v in result.timings_ms.items()))


def _ask(args, rag: RAG) -> str | None:
    kwargs = {k: getattr(args, k) for k in ("top_k", "top_n", "retrieval", "reranker", "instruction")}
    if args.json:
        result = rag.ask(args.question, **kwargs)
        return json.dumps(
            asdict(result) | {"notes": notes(result, args.reranker, rag, args.instruction)},
            indent=2,
            ensure_ascii=False,
        )
    printer = _AskPrinter(rag.choice)
    stream = rag.settings.llm_configured
    token = lambda t: printer.token(t, rag.settings.llm_model)  # noqa: E731
    try:
        result = rag.ask(args.question, **kwargs, stream=stream, on_token=token, on_sources=printer.sources)
    except Exception:
        printer.end_line()  # the error that follows stands on a line of its own
        raise
    printer.answer(result, notes(result, args.reranker, rag, args.instruction))
    return None


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; an error is always the last line, alone."""
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
        configure_process(settings.device)
        choice = choose_models(settings)
        if args.command == "eval":
            instructions = tuple(s.strip() for s in args.instruction.split(",")) if args.instruction else ()
            options = {
                "corpus": args.corpus,
                "chunker": args.chunker,
                "strategies": args.strategies,
                "k": args.k,
            }
            report = run_eval(
                args.queries, settings, choice, dims=args.dims, instructions=instructions, **options
            )
            out = json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report)
        elif args.command == "ingest":
            with closing(RAG(settings, choice)) as rag:
                report = rag.ingest(args.corpus, args.chunker, args.rebuild, progress=not args.json)
            out = (
                json.dumps(asdict(report), indent=2)
                if args.json
                else (
                    f"Collection {report.collection!r}: {report.rows} rows from {report.corpus} "
                    f"({report.chunker} chunker; {report.embedded} embedded, {report.removed} removed)."
                )
            )
        else:
            with closing(RAG(settings, choice)) as rag:
                out = _ask(args, rag)
            if out is None:
                return 0
        print(banner(choice), file=sys.stderr, flush=True)
        print(out)
        return 0
    except (ValueError, DataError, ConfigError, EvalDataError) as exc:
        return _error(exc, 2)
    except (StoreError, ModelLoadError, ModelServerError, LLMError) as exc:
        return _error(exc, 1)


def _error(exc: Exception, code: int) -> int:
    sys.stdout.flush()
    print(f"error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
    return code


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: `run`, with warnings on one line each and library noise left out."""
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        # `ask` reports a cut question in its notes; the UserWarning (for library callers) would repeat it.
        warnings.filterwarnings("ignore", message=r"The question has .* characters", category=UserWarning)
        code = run(argv)
    sys.exit(code)
