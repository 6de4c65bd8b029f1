"""Command line: `python -m helpers ingest ...` and `python -m helpers ask "QUESTION" ...`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
import warnings

from helpers.config import ConfigError, get_settings
from helpers.data import CHUNKERS, DataError
from helpers.evaluate import STRATEGIES, EvalDataError, format_report, run_eval
from helpers.generate import LLMError
from helpers.models import ModelChoice, ModelLoadError, choose_models
from helpers.pipeline import RAG, RERANKER_CHOICES, AskResult
from helpers.remote import ModelServerError
from helpers.store import SEARCH_MODES, StoreError
from helpers.switches import configure_process


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit code 2, like other bad input
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = _Parser(prog="python -m helpers", description="Two-stage RAG over the Milvus FAQ.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ing = sub.add_parser("ingest", help="chunk, embed and index a corpus")
    ing.add_argument("--corpus", default="milvus-faq", help="milvus-faq, sample, or a folder/zip PATH")
    ing.add_argument("--chunker", choices=CHUNKERS, default="markdown")
    ing.add_argument("--rebuild", action="store_true", help="drop the collection and index from scratch")
    ing.add_argument("--json", action="store_true", help="print a JSON report")

    ask = sub.add_parser("ask", help="answer a question from the indexed corpus")
    ask.add_argument("question")
    ask.add_argument("--top-k", type=_positive, default=10, help="passages retrieved (default 10)")
    ask.add_argument("--top-n", type=_positive, default=3, help="passages kept after reranking (default 3)")
    ask.add_argument(
        "--retrieval", choices=SEARCH_MODES, default=None, help="default: dense when reranking, else hybrid"
    )
    ask.add_argument(
        "--reranker",
        choices=RERANKER_CHOICES,
        default="auto",
        help="auto: Qwen3 with the Qwen3 kit, none with the offline kit",
    )
    ask.add_argument("--instruction", default=None, help="task instruction for query embedding and reranking")
    ask.add_argument("--json", action="store_true", help="print a JSON result")

    ev = sub.add_parser("eval", help="measure retrieval quality on labelled questions")
    ev.add_argument("--queries", required=True, help="JSONL file of {query, lang, relevant}")
    ev.add_argument("--corpus", default="milvus-faq", help="milvus-faq, sample, or a folder/zip PATH")
    ev.add_argument("--chunker", choices=CHUNKERS, default="markdown")
    ev.add_argument("--k", type=_positive, default=10, help="candidates retrieved per question (default 10)")
    ev.add_argument(
        "--strategies",
        type=_strategies,
        default=None,
        help=f"comma-separated subset of {','.join(STRATEGIES)} (default: all when a trained reranker "
        "runs, else dense,bm25,hybrid: the random stand-in's rows would measure noise)",
    )
    ev.add_argument(
        "--instruction",
        default=None,
        help="ablation: comma-separated settings among none, default, or a custom instruction",
    )
    ev.add_argument("--dims", type=_dims, default=(), help="ablation: Matryoshka dims, e.g. 32,64,128,256")
    ev.add_argument("--json", action="store_true", help="print the JSON report")
    return parser


def _strategies(value: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in value.split(",") if s.strip())
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown strategy {', '.join(unknown) or value!r}; use {','.join(STRATEGIES)}"
        )
    return names


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


class _AskPrinter:
    """Prints `ask` as it goes: the sources once ranked, then one answer header, streamed or not."""

    def __init__(self, choice: ModelChoice):
        self.choice = choice
        self.shown: set[int] = set()  # notes already printed
        self.streaming = False  # an "Answer (model):" header is printed and its line is open

    def _notes(self, result: AskResult) -> None:
        for n, note in enumerate(result.notes):
            if n not in self.shown:
                self.shown.add(n)
                if note not in result.answer:  # an LLM failure is already in the extractive answer
                    print(f"\nNote: {note}")

    def sources(self, result: AskResult) -> None:
        print(self.choice.banner(), file=sys.stderr, flush=True)
        print(f"\nQuestion: {result.question}")
        print(f"Retrieval: {result.retrieval}   reranker: {result.reranker}\n")
        for n, src in enumerate(result.sources, start=1):
            rerank = "" if src.rerank_score is None else f"  rerank P(yes)={src.rerank_score:.4f}"
            print(f"[{n}] score={src.score:.4f}{rerank}  {src.title}  ({src.source})")
            print(textwrap.indent(textwrap.shorten(src.text, 300, placeholder=" …"), "    "))
        self._notes(result)

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

    def answer(self, result: AskResult) -> None:
        streamed = self.streaming
        self.end_line()
        if streamed and result.answer_backend.startswith("extractive"):
            print("(the LLM's answer broke off; the best passage follows)")
        if not streamed or result.answer_backend.startswith("extractive"):
            print(f"\nAnswer ({result.answer_backend}):\n{result.answer}")
        self._notes(result)
        timings = ", ".join(f"{k} {v:.0f} ms" for k, v in result.timings_ms.items())
        print(f"\nTimings: {timings}")


def _eval(args, settings, choice: ModelChoice) -> str:
    instructions = tuple(s.strip() for s in args.instruction.split(",")) if args.instruction else ()
    report = run_eval(
        args.queries,
        settings,
        choice,
        corpus=args.corpus,
        chunker=args.chunker,
        strategies=args.strategies,
        k=args.k,
        dims=args.dims,
        instructions=instructions,
    )
    return json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report)


def _ingest(args, rag: RAG) -> str:
    report = rag.ingest(args.corpus, args.chunker, rebuild=args.rebuild, progress=not args.json)
    if args.json:
        return json.dumps(report.as_json(), indent=2)
    return (
        f"Collection {report.collection!r}: {report.rows} rows from {report.corpus} "
        f"({report.chunker} chunker; {report.embedded} embedded, {report.removed} removed)."
    )


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code.

    Settings and the model choice are resolved once, here, and passed down. The models banner
    (stderr) comes once the work has succeeded, and an error is always the last line, alone:
    `error: ...` on stderr.
    """
    args = build_parser().parse_args(argv)
    printer: _AskPrinter | None = None
    try:
        settings = get_settings()
        configure_process(settings.device)
        choice = choose_models(settings)
        if args.command == "eval":
            out = _eval(args, settings, choice)
        elif args.command == "ingest":
            out = _ingest(args, RAG(settings, choice))
        else:
            rag = RAG(settings, choice)
            query = {
                "top_k": args.top_k,
                "top_n": args.top_n,
                "retrieval": args.retrieval,
                "reranker": args.reranker,
                "instruction": args.instruction,
            }
            if not args.json:  # streamed: the printer shows the banner with the sources
                printer = _AskPrinter(choice)
                result = rag.ask(
                    args.question,
                    **query,
                    stream=settings.llm_configured,
                    on_token=lambda t: printer.token(t, settings.llm_model),
                    on_sources=printer.sources,
                )
                printer.answer(result)
                return 0
            out = json.dumps(rag.ask(args.question, **query).as_json(), indent=2, ensure_ascii=False)
        print(choice.banner(), file=sys.stderr, flush=True)
        print(out)
        return 0
    except (ValueError, DataError, ConfigError, EvalDataError) as exc:
        return _error(exc, 2, printer)
    except (StoreError, ModelLoadError, ModelServerError, LLMError) as exc:
        return _error(exc, 1, printer)


def _error(exc: Exception, code: int, printer: _AskPrinter | None) -> int:
    if printer is not None:
        printer.end_line()
    sys.stdout.flush()
    print(f"error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
    return code


# pymilvus logs "failed to get mvccTs from milvus server, use client-side ts instead" each time a
# query iterator starts on Milvus Lite, which `ingest` uses to find rows that left the corpus. It is
# harmless here (the iterator falls back to a client-side timestamp and still lists every row, as the
# removed-row counts show) and only alarms a learner, so the CLI drops that one message.
_MVCC_LOGGER = "pymilvus.client.iterator.query_iterator"


def _not_mvcc_noise(record: logging.LogRecord) -> bool:
    return "mvccTs" not in record.getMessage()


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: `run`, with warnings on one line each and library noise left out."""
    logger = logging.getLogger(_MVCC_LOGGER)
    logger.addFilter(_not_mvcc_noise)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            # `ask` puts an overlong question's truncation in its notes; the same UserWarning (for
            # library callers) would print the message twice.
            warnings.filterwarnings("ignore", message=r"The question has .* characters", category=UserWarning)
            code = run(argv)
    finally:
        logger.removeFilter(_not_mvcc_noise)
    sys.exit(code)


if __name__ == "__main__":
    main()
