"""Command line: `python -m helpers ingest ...` and `python -m helpers ask "QUESTION" ...`."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap

from helpers.config import ConfigError, get_settings
from helpers.data import CHUNKERS, DataError
from helpers.evaluate import STRATEGIES, EvalDataError, format_report, run_eval
from helpers.generate import LLMError
from helpers.models import ModelLoadError, print_banner
from helpers.pipeline import RAG, RERANKER_CHOICES
from helpers.store import SEARCH_MODES, StoreError


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
        default=STRATEGIES,
        help=f"comma-separated subset of {','.join(STRATEGIES)}",
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


def _print_ask(result) -> None:
    print(f"\nQuestion: {result.question}")
    print(f"Retrieval: {result.retrieval}   reranker: {result.reranker}\n")
    for n, src in enumerate(result.sources, start=1):
        rerank = "" if src.rerank_score is None else f"  rerank P(yes)={src.rerank_score:.4f}"
        print(f"[{n}] score={src.score:.4f}{rerank}  {src.title}  ({src.source})")
        print(textwrap.indent(textwrap.shorten(src.text, 300, placeholder=" …"), "    "))
    for note in result.notes:
        print(f"\nNote: {note}")
    if result.answer_backend.startswith("extractive"):
        print(f"\nAnswer ({result.answer_backend}):\n{result.answer}")
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in result.timings_ms.items())
    print(f"\nTimings: {timings}")


def _eval(args, settings) -> int:
    instructions = tuple(s.strip() for s in args.instruction.split(",")) if args.instruction else ()
    print_banner()
    report = run_eval(
        args.queries,
        settings,
        corpus=args.corpus,
        chunker=args.chunker,
        strategies=args.strategies,
        k=args.k,
        dims=args.dims,
        instructions=instructions,
    )
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report))
    return 0


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
        if args.command == "eval":
            return _eval(args, settings)
        rag = RAG(settings)
        print_banner(rag.choice)
        if args.command == "ingest":
            report = rag.ingest(args.corpus, args.chunker, rebuild=args.rebuild, progress=not args.json)
            if args.json:
                print(json.dumps(report.as_json(), indent=2))
            else:
                print(
                    f"Collection {report.collection!r}: {report.rows} rows from {report.corpus} "
                    f"({report.chunker} chunker; {report.embedded} embedded, {report.removed} removed)."
                )
            return 0
        streamed = settings.llm_configured and not args.json
        if streamed:
            print("\nAnswer: ", end="", flush=True)
        result = rag.ask(
            args.question,
            top_k=args.top_k,
            top_n=args.top_n,
            retrieval=args.retrieval,
            reranker=args.reranker,
            instruction=args.instruction,
            stream=streamed,
            on_token=lambda t: print(t, end="", flush=True),
        )
        if args.json:
            print(json.dumps(result.as_json(), indent=2, ensure_ascii=False))
        else:
            if streamed:
                print()
            _print_ask(result)
        return 0
    except (ValueError, DataError, ConfigError, EvalDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (StoreError, ModelLoadError, LLMError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def main() -> None:
    """Console entry point."""
    sys.exit(run())


if __name__ == "__main__":
    main()
