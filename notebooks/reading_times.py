"""Reading time of each course notebook: core path, exercises and deep dives, against the README's agenda.

Usage: python notebooks/reading_times.py [--sections] (or `make reading-times`)

The formula: prose at 180 words a minute plus code at 15 lines a minute (non-blank lines of code cells);
outputs and the time the computer takes are not counted. A notebook's parts are its `## ` sections: those
titled "Try it yourself" are exercises, those titled "Deep dive…" deep dives, everything else the core path.
Exits 1 when a notebook's core path is longer than its agenda time, or the core total than TOTAL_BUDGET.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORDS_PER_MIN = 180
CODE_LINES_PER_MIN = 15
TOTAL_BUDGET = 110  # minutes of core path in the whole course, the workshop's reading budget
PARTS = ("core", "exercises", "deep dive")


def part_of(heading: str) -> str:
    """Which part a `## ` section belongs to, from its title."""
    title = heading.strip().lower()
    if title.startswith("try it yourself"):
        return "exercises"
    if title.startswith("deep dive"):
        return "deep dive"
    return "core"


def course_notebooks() -> list[Path]:
    """The course notebooks in order: notebooks/NN_*.ipynb (solutions and deep-dive notebooks are extra)."""
    return sorted(HERE.glob("[0-9][0-9]_*.ipynb"))


def measure(path: Path) -> dict[str, dict]:
    """Words of prose and lines of code per part, and per `## ` section."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    section, part = "(top)", "core"
    parts = {p: {"words": 0, "lines": 0} for p in PARTS}
    sections: dict[str, dict] = {}

    def add(key: str, amount: int) -> None:
        parts[part][key] += amount
        sections.setdefault(section, {"part": part, "words": 0, "lines": 0})[key] += amount

    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            for piece in re.split(r"(?m)^(?=## )", source):
                heading = re.match(r"## (.*)", piece)
                if heading:
                    section, part = heading.group(1).strip(), part_of(heading.group(1))
                add("words", len(piece.split()))
        elif cell["cell_type"] == "code":
            add("lines", sum(1 for line in source.splitlines() if line.strip()))
    return {"parts": parts, "sections": sections}


def cell_parts(cells: list[dict]) -> list[str]:
    """The part (core, exercises, deep dive) each cell belongs to: that of the last `## ` heading so far."""
    part, parts = "core", []
    for cell in cells:
        if cell["cell_type"] == "markdown":
            for heading in re.findall(r"(?m)^## (.*)", "".join(cell["source"])):
                part = part_of(heading)
        parts.append(part)
    return parts


def minutes(counts: dict) -> float:
    """The formula: words / 180 + code lines / 15."""
    return counts["words"] / WORDS_PER_MIN + counts["lines"] / CODE_LINES_PER_MIN


def agenda() -> dict[str, int]:
    """Suggested minutes per notebook number, from the README's agenda table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| \[(\d\d) [^\]]*\]\([^)]*\) \|[^|]*\| (\d+) min \|", text, flags=re.M)
    return {number: int(mins) for number, mins in rows}


def report(paths: list[Path], show_sections: bool = False) -> tuple[list[str], bool]:
    """The table as lines, and whether every core path fits its agenda time and the total its budget."""
    times = agenda()
    lines = [f"{'notebook':<28} {'core':>6} {'agenda':>7} {'exercises':>10} {'deep dive':>10}"]
    ok, total = True, 0.0
    for path in paths:
        measured = measure(path)
        mins = {p: minutes(measured["parts"][p]) for p in PARTS}
        stated = times.get(path.name[:2])
        fits = stated is not None and mins["core"] <= stated
        ok &= fits
        total += mins["core"]
        flag = "" if fits else "  over its agenda time" if stated else "  not in the README agenda"
        lines.append(
            f"{path.stem:<28} {mins['core']:>6.1f} {stated or '-':>7} {mins['exercises']:>10.1f} "
            f"{mins['deep dive']:>10.1f}{flag}"
        )
        if show_sections:
            for name, counts in measured["sections"].items():
                lines.append(f"    {counts['part']:<9} {minutes(counts):>5.1f}  {name[:70]}")
    ok &= total <= TOTAL_BUDGET
    lines.append(f"{'core total':<28} {total:>6.1f} {'≤ ' + str(TOTAL_BUDGET):>7}")
    lines.append(
        f"minutes = prose words / {WORDS_PER_MIN} + non-blank code lines / {CODE_LINES_PER_MIN}"
        " (outputs not counted)"
    )
    return lines, ok


def main(argv: list[str]) -> int:
    """Print the table; exit 1 when a core path is over its time."""
    lines, ok = report(course_notebooks(), "--sections" in argv)
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
