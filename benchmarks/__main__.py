"""`python -m benchmarks NAME [--quick | --smoke] [--json]`: run one benchmark (or `all`), save its results.

`--smoke` runs each benchmark's whole code path on a handful of items with the tiny models (seconds
each, as tests/test_benchmarks.py does) and saves nothing: it checks that the code runs, not its speed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import machine, save
from helpers.config import configure_process, get_settings, resolve_device

NAMES = ("embed", "rerank", "milvus", "ask", "precision", "levers", "notebooks", "serving", "explore")
NAMES += ("train_reranker", "class")
MODULES = {"class": "classroom"}  # `class` is a Python keyword


def headline(name: str, result: dict) -> dict:
    """The headline numbers of embed and rerank: speedup, memory_ratio, max_abs_diff, model."""
    if name not in ("embed", "rerank"):
        return {}
    rows = []
    for label, entry in result["models"].items():
        if "skipped" in entry:
            continue
        for size, row in entry.get("corpora", entry.get("candidates", {})).items():
            if "speedup" in row:
                rows.append(
                    {
                        "model": label,
                        "input": size,
                        "speedup": row["speedup"],
                        **{k: row[k] for k in ("course_vs_loop", "course_vs_loop_cpu") if k in row},
                        "memory_ratio": row["memory_ratio"],
                        "max_abs_diff": row["max_abs_diff"],
                    }
                )
    wanted = [r for r in rows if "0.6B" in r["model"] and (name == "embed" or r["input"] == "10")]
    main = (wanted or rows or [{}])[-1]
    return {**main, "all": rows}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print and save."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("name", choices=(*NAMES, "all", "plot"))
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small inputs (under 5 minutes on 2 CPU cores)")
    size.add_argument(
        "--smoke",
        action="store_true",
        help="a handful of items and the tiny models, seconds per benchmark; nothing is saved "
        "(plot draws the saved results into a temporary file)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--only",
        default="",
        help="embed: a subset of inputs, e.g. faq,1k or 10k; levers: compile; notebooks, explore: "
        "qwen3-0.6b-shape; class: own, shared, rebuild",
    )
    args = parser.parse_args(argv)
    if args.name == "plot":
        from benchmarks.plot import main as plot

        if args.smoke:
            with tempfile.TemporaryDirectory() as tmp:
                path = plot(out=Path(tmp) / "summary.png")
                print(f"plot: drew {path.stat().st_size} bytes of PNG; --smoke: not saved")
        else:
            print(f"saved {plot()}")
        return 0
    settings = get_settings()
    configure_process(settings.device)
    device = resolve_device(settings.device)
    host = machine(device)  # before the run: a missing package must not cost a whole benchmark
    for name in NAMES if args.name == "all" else (args.name,):
        module = importlib.import_module(f"benchmarks.{MODULES.get(name, name)}")
        started = time.perf_counter()
        result = module.run(settings, device, args.quick, args.only, smoke=args.smoke)
        payload = {
            "benchmark": name,
            "quick": args.quick,
            "only": args.only or "all",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": host,
            "device": device,
            **headline(name, result),
            "result": result,
            "wall_s": round(time.perf_counter() - started, 1),
        }
        if args.smoke:
            done = f"{name}: ran; --smoke: not saved"
        else:
            only = f"_{args.only.replace(',', '_')}" if args.only else ""
            suffix = ("_quick" if args.quick else "") + only
            done = f"{name}: saved {save(name + suffix, device, payload)}"
        print(json.dumps(payload, indent=2) if args.json else done, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
