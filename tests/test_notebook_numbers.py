"""Every measured-looking number in a notebook's prose appears in one of that notebook's own outputs.

Numbers in prose must come from outputs: a decimal (0.853, 0.39), a percentage (98%) or a figure with a unit
(13 s, 160 ms, 1.2 GB) that no output of the same notebook shows is either stale or typed by hand. A short
allow-list holds the figures the prose cites from elsewhere, each with its source. Section numbers, counts of
things and the stated times in a notebook's header table are not measurements and are left alone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers.config import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) + sorted(
    (ROOT / "notebooks" / "solutions").glob("*.ipynb")
)
UNITS = r"(?:ms|s|min|minutes?|seconds?|GB|GiB|MB|MiB|KB|tokens?|pairs/s|dimensions?)"
NUMBER = re.compile(
    rf"(?<![\w.\-/])(?:\d+\.\d+(?:\s?{UNITS}\b|%|(?![A-Za-z]))|\d[\d,]*(?:\s?%|\s{UNITS}\b))(?![\w.]*\d)"
)
# Figures the prose cites rather than measures, each with its source.
CITED = {
    "61.82": "Qwen3-Embedding-0.6B MTEB-R, arXiv:2506.05176 and its model card",
    "1.2 GB": "download size of each Qwen3 0.6B model (Hugging Face file listing, README)",
    "32,768": "Qwen3-Embedding-0.6B's context length, its model card",
    "95%": "the confidence level chosen for the bootstrap intervals (a setting, not a measurement)",
    "80%": "the statistical power chosen for the sample-size rule (a setting)",
    "90%": "the statistical power chosen for exercise 4 of 06 (a setting)",
    "98%": "the MRR budget chosen for exercise 2 of 02 (a setting)",
    "5%": "the significance level of the tests (a setting)",
    "1-5%": "Qwen3-Embedding model card: leaving the instruction out costs 1-5% retrieval quality",
    "1.96": "z of a two-sided 95% normal interval, norm.ppf(0.975)",
    "3.2": "Milvus Lite's version (milvus-lite 3.2.2 in requirements.txt)",
}


def prose(cell: dict) -> str:
    """A markdown cell's text without code spans, links' targets and the header's stated times."""
    text = "".join(cell["source"])
    text = re.sub(r"```.*?```", " ", text, flags=re.S)  # fenced code
    text = re.sub(r"`[^`]*`", " ", text)  # inline code: names and commands, not figures
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    text = re.sub(r"(?m)^\| \*\*Time\*\* \|.*$", " ", text)  # a notebook's stated reading time
    text = re.sub(r"(?i)\bsections?\s+\d+(\.\d+)?", " ", text)  # section numbers
    text = re.sub(r"arXiv:\d+\.\d+", " ", text)
    return text


def outputs(cells: list[dict]) -> str:
    """Every text output of the notebook, one string."""
    parts = []
    for cell in cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append("".join(out["text"]))
            for kind, value in out.get("data", {}).items():
                if kind.startswith("text/"):
                    parts.append("".join(value))
    return " ".join(parts)


def unmatched(path: Path) -> list[str]:
    """The measured-looking numbers of the notebook's prose that none of its outputs shows."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    shown = outputs(cells)
    shown_plain = re.sub(r"\s+", " ", shown)
    missing = []
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        for match in NUMBER.finditer(prose(cell)):
            figure = match.group(0).strip()
            if figure in CITED or figure in missing:
                continue
            bare = re.match(r"[\d.,]+", figure).group(0)
            if figure in shown_plain or re.sub(r"\s", "", figure) in shown_plain.replace(" ", ""):
                continue
            if "." in bare and re.search(rf"(?<![\d.]){re.escape(bare)}(?!\d)", shown_plain):
                continue  # a decimal printed with another unit or format
            missing.append(figure)
    return missing


def test_the_pattern_finds_measurements_and_skips_the_rest():
    text = "MRR@10 0.853, 13 s per pass, 160 ms, 98% of it, 1.2 GB; "
    text += "section 8.2, 57 passages, q10, v2.4.5, 0.6B, 2.5th"
    found = [m.group(0).strip() for m in NUMBER.finditer(prose({"source": [text]}))]
    assert found == ["0.853", "13 s", "160 ms", "98%", "1.2 GB"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_number_in_the_prose_comes_from_an_output(path):
    missing = unmatched(path)
    assert not missing, f"{path.name}: prose numbers no output shows: {missing} (or cite them in CITED)"


def test_a_number_no_output_shows_is_reported(tmp_path):
    cells = [
        {
            "cell_type": "markdown",
            "source": ["Dense reaches 0.853 (printed) and 0.999 (typed), in 12 s; 95% CI."],
        },
        {
            "cell_type": "code",
            "source": [],
            "outputs": [{"output_type": "stream", "text": ["mrr@10 0.853\n"]}],
        },
    ]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": cells}), encoding="utf-8")
    assert unmatched(path) == ["0.999", "12 s"]
