"""Execute the course notebooks in a given environment and report the first cell that raises in each.

Outputs are not compared (nbval does that for the committed offline outputs); this only proves that every
cell runs, e.g. with `RAG_MODELS=qwen3` pointed at the hub replicas. Files are never written back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from helpers.config import ROOT

NOTEBOOKS_DIR = ROOT / "notebooks"


@dataclass(frozen=True)
class CellFailure:
    """The first cell of a notebook that raised: where, what, and the start of its source."""

    notebook: str
    cell: int
    error: str
    source: str

    def __str__(self) -> str:
        head = "\n    ".join(self.source.splitlines()[:6])
        return f"{self.notebook}, cell {self.cell}: {self.error}\n    {head}"


def course_notebooks(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Every notebooks/NN_*.ipynb, then every notebooks/solutions/*.ipynb, in order."""
    return [*sorted(folder.glob("[0-9][0-9]_*.ipynb")), *sorted((folder / "solutions").glob("*.ipynb"))]


def run_notebook(
    path: Path,
    env: dict[str, str],
    timeout: int = 900,
    cwd: Path | None = None,
    cell_seconds: dict[int, float] | None = None,
) -> CellFailure | None:
    """Run every code cell of `path` in a fresh kernel with environment `env`; None when all succeed.

    The kernel's working directory is `cwd` (default: the notebook's own folder, as in JupyterLab).
    `cell_seconds`, when given, receives each executed cell's wall seconds by cell index.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    resources = {"metadata": {"path": str(cwd or path.parent)}}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources=resources)
    name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    index = -1
    try:
        with client.setup_kernel(env=env):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type == "code":
                    start = time.perf_counter()
                    client.execute_cell(cell, index)
                    if cell_seconds is not None:
                        cell_seconds[index] = time.perf_counter() - start
    except CellExecutionError as exc:
        return CellFailure(name, index, f"{exc.ename}: {exc.evalue}", nb.cells[index].source)
    except (CellTimeoutError, DeadKernelError) as exc:
        source = nb.cells[index].source if index >= 0 else ""
        return CellFailure(name, index, f"{type(exc).__name__}: {exc}".splitlines()[0], source)
    return None


def run_notebooks(
    paths: list[Path], env: dict[str, str], timeout: int = 900, cwd: Path | None = None
) -> list[CellFailure]:
    """Run each notebook in its own kernel; the failures, one per failing notebook."""
    return [f for path in paths if (f := run_notebook(path, env, timeout, cwd)) is not None]
