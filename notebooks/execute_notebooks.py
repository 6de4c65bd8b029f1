"""Re-execute the course notebooks in place with the offline kit; keep their outputs, drop volatile metadata.

Usage: python notebooks/execute_notebooks.py [--fresh] [NOTEBOOK ...]
(default: every notebooks/NN_*.ipynb, then every notebooks/solutions/NN_*_solutions.ipynb)

A cell's previous outputs are kept when the new ones differ only in what `nbval_sanitize.cfg`
calls volatile (timings, addresses), so running this twice leaves the files unchanged. A cell tagged
`volatile` keeps its old outputs (plots included) whenever its masked text is the same: after changing
such a cell's code, run with `--fresh` so that every output is the new one.
"""

from __future__ import annotations

import configparser
import copy
import os
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def sanitizers() -> list[tuple[re.Pattern, str]]:
    """The regex/replacement pairs of nbval_sanitize.cfg."""
    cfg = configparser.ConfigParser()
    cfg.read(HERE / "nbval_sanitize.cfg")
    return [(re.compile(cfg[s]["regex"]), cfg[s]["replace"]) for s in cfg.sections()]


def _text(outputs: list, patterns, volatile: bool = False) -> str:
    parts = []
    stream = None  # consecutive pieces of one stream are one text (nbval coalesces them the same way)
    for out in outputs:
        if out.get("output_type") == "stream":
            if stream == out["name"]:
                parts[-1] += out["text"]
            else:
                parts.append(out["name"] + ":" + out["text"])
            stream = out["name"]
            continue
        stream = None
        if "data" in out:
            parts += [f"{k}:{v}" for k, v in sorted(out["data"].items()) if not k.startswith("image/")]
        elif out.get("output_type") == "error":
            parts.append("error:" + out.get("ename", ""))
    text = "\n".join(parts)
    for regex, replacement in patterns:
        text = regex.sub(replacement, text)
    if volatile:  # a cell tagged volatile (latencies) differs in its numbers on every run
        text = re.sub(r"\d+(\.\d+)?", "<n>", text)
    return " ".join(text.split())  # tables re-align when a masked number changes width


def _images(outputs: list) -> list:
    return [v for out in outputs for k, v in sorted(out.get("data", {}).items()) if k.startswith("image/")]


def _screen(outputs: list) -> list:
    """Consecutive writes to one stream joined, each line kept as a screen shows it: a progress bar redraws
    its line with carriage returns, and only the text after a line's last one stays."""
    merged: list = []
    for out in outputs:
        if out.get("output_type") == "stream" and merged and merged[-1].get("name") == out.get("name"):
            merged[-1]["text"] += out["text"]
        else:
            merged.append(copy.deepcopy(out))
    for out in merged:
        if out.get("output_type") == "stream":
            out["text"] = re.sub(r"[^\n]*\r", "", out["text"])
    return merged


def execute(path: Path, patterns, fresh: bool = False) -> bool:
    """Run one notebook; return True when its file changed. `fresh`: keep no old output."""
    original = nbformat.read(path, as_version=4)
    nb = copy.deepcopy(original)
    # The kernel's sockets bind to 127.0.0.1 only (jupyter_client's default).
    resources = {"metadata": {"path": str(path.resolve().parent)}}
    client = NotebookClient(nb, timeout=1800, kernel_name="python3", resources=resources)
    client.execute()
    for old, new in zip(original.cells, nb.cells, strict=True):
        new.metadata.pop("execution", None)
        if new.cell_type != "code":
            continue
        new.outputs = _screen(new.outputs)
        volatile = "volatile" in new.metadata.get("tags", [])
        before, after = (_text(outs, patterns, volatile) for outs in (old.get("outputs", []), new.outputs))
        same_text = before == after
        if not fresh and same_text and (volatile or _images(old.get("outputs", [])) == _images(new.outputs)):
            new.outputs = old.get("outputs", [])
            new.execution_count = old.get("execution_count")
    nb.metadata.pop("widgets", None)
    # The kernel's full language_info stays: JupyterLab fills it in and would mark a stripped file modified.
    if nb == original:
        return False
    nbformat.write(nb, path)
    return True


def main(argv: list[str]) -> int:
    """Execute the given notebooks (or all) in order."""
    os.environ.setdefault("RAG_MODELS", "offline")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    fresh = "--fresh" in argv
    argv = [a for a in argv if a != "--fresh"]
    paths = [Path(p) for p in argv] or [
        *sorted(HERE.glob("[0-9][0-9]_*.ipynb")),
        *sorted((HERE / "solutions").glob("[0-9][0-9]_*_solutions.ipynb")),
    ]
    patterns = sanitizers()
    for path in paths:
        changed = execute(path, patterns, fresh)
        print(f"{path.name}: {'updated' if changed else 'unchanged'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
