"""notebooks/reading_times.py: the formula, the parts of a notebook, every core path within its time."""

from __future__ import annotations

import json
import sys

from helpers.config import ROOT

sys.path.insert(0, str(ROOT / "notebooks"))

import reading_times as rt


def notebook(tmp_path, cells):
    path = tmp_path / "09_x.ipynb"
    path.write_text(json.dumps({"cells": cells}), encoding="utf-8")
    return path


def test_formula_and_parts(tmp_path):
    words = lambda n: " ".join(["word"] * n)  # noqa: E731
    cells = [
        {"cell_type": "markdown", "source": ["# Title\n", words(178)]},  # 180 words with "#" and "Title"
        {"cell_type": "code", "source": ["x = 1\n\n"] * 15},  # 15 non-blank lines
        {
            "cell_type": "markdown",
            "source": [f"{words(8)}\n\n## Try it yourself\n", words(87)],
        },  # 8 core, 90 ex.
        {"cell_type": "code", "source": ["y = 2\n"] * 3},
        {"cell_type": "markdown", "source": ["## Deep dive: more\n"]},
        {"cell_type": "code", "source": ["z = 3\n"] * 12},
        {"cell_type": "markdown", "source": ["## What's next\n"]},
    ]
    parts = rt.measure(notebook(tmp_path, cells))["parts"]
    assert parts["core"] == {"words": 180 + 8 + 3, "lines": 15}  # "## What's next" is core
    assert parts["exercises"] == {"words": 4 + 87, "lines": 3}
    assert parts["deep dive"] == {"words": 4, "lines": 12}
    assert rt.minutes({"words": 180, "lines": 15}) == 2.0
    expected = ["core", "core", "exercises", "exercises", "deep dive", "deep dive", "core"]
    assert rt.cell_parts(cells) == expected


def test_agenda_is_read_from_the_readme():
    agenda = rt.agenda()
    assert set(agenda) >= {"00", "01", "02", "03", "04", "05", "06"}
    assert all(minutes > 0 for minutes in agenda.values())


def test_every_core_path_fits_its_agenda_time_and_the_budget():
    lines, ok = rt.report(rt.course_notebooks())
    assert ok, "\n".join(lines)
