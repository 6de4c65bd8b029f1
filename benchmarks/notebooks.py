"""Wall time of each course notebook, top to bottom, with the models the environment selects.

`python -m benchmarks notebooks` times the offline kit. `--only qwen3-0.6b-shape` runs the qwen3 kit on
the Qwen3-0.6B-shaped stand-ins (28 layers, random weights): the real models' cost on this machine
without downloading them. Each notebook runs in a fresh kernel on its own Milvus Lite file, as a
learner's would (index built on first use); outputs are not kept.

Three runs: the core path alone (the cells outside "Try it yourself" and "Deep dive" sections, as
`notebooks/reading_times.py` reads them; what a class runs) with the vector cache off (`RAG_EMBED_CACHE=0`:
each notebook embeds its passages itself, as before the class kit), the core path with the cache on and
empty at the start (a learner's first day), and whole notebooks with a cache empty at the start. Each cell is
timed and counted in its part; a notebook's kernel start and shutdown count as core.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.models import random_06b
from helpers.config import ROOT


def _fresh_cache(cache_dir: Path, parent: str | Path) -> Path:
    """A new cache folder under `parent` sharing everything in `cache_dir` but the vector cache (empty)."""
    into = Path(tempfile.mkdtemp(dir=parent))
    for entry in cache_dir.iterdir() if cache_dir.is_dir() else ():
        if not entry.name.startswith("embeddings.sqlite"):
            (into / entry.name).symlink_to(entry.resolve())
    return into


def run_course(paths: list[Path], env: dict[str, str], parts: tuple[str, ...] = ()) -> dict:
    """Run each notebook in a fresh kernel (only the cells of `parts`, if given): seconds per part."""
    from notebook_runner import run_notebook  # the tests' runner (tests/ is on the path: benchmarks/__init__)

    if str(ROOT / "notebooks") not in sys.path:  # notebooks/ is a folder of scripts, not a package
        sys.path.insert(0, str(ROOT / "notebooks"))
    from reading_times import PARTS, cell_parts

    notebooks, failures = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**env, "MILVUS_URI": "", "RAG_LITE_FILE": str(Path(tmp) / "course.db")}
        for path in paths:
            nb = json.loads(path.read_text(encoding="utf-8"))
            pairs = zip(nb["cells"], cell_parts(nb["cells"]), strict=True)
            keep = [(c, p) for c, p in pairs if not parts or p in parts]
            nb["cells"] = [c for c, _ in keep]
            copy = Path(tmp) / path.name  # run from the notebook's own folder, as in JupyterLab
            copy.write_text(json.dumps(nb), encoding="utf-8")
            cells: dict[int, float] = {}
            start = time.perf_counter()
            failure = run_notebook(copy, env, timeout=3600, cwd=path.parent, cell_seconds=cells)
            total = time.perf_counter() - start
            by_part = {p: sum(s for i, s in cells.items() if keep[i][1] == p) for p in PARTS}
            by_part["core"] += total - sum(cells.values())  # kernel start and shutdown: every learner waits
            notebooks[path.stem] = {"total": round(total, 1), **{p: round(s, 1) for p, s in by_part.items()}}
            if failure is not None:
                failures[path.stem] = str(failure)
    sums = {p: round(sum(n[p] for n in notebooks.values()), 1) for p in ("total", *PARTS)}
    return {"seconds": notebooks, "sums": sums, "failures": failures}


def run(settings, device: str, quick: bool, only: str = "", smoke: bool = False) -> dict:
    """The core path with the vector cache off, then on; then whole notebooks; `quick`: 00-02, `smoke`: 00."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    kit = "offline kit"
    if only == "qwen3-0.6b-shape":
        env.update(
            RAG_MODELS="qwen3",
            RAG_EMBEDDING_MODEL=random_06b("embedding", settings),
            RAG_RERANKER_MODEL=random_06b("reranker", settings),
        )
        kit = "Qwen3-0.6B shape, random weights (timing only)"
    else:
        env["RAG_MODELS"] = "offline"
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))[: 1 if smoke else 3 if quick else None]
    result = {"kit": kit}
    with tempfile.TemporaryDirectory() as tmp:

        def cache_on() -> dict[str, str]:  # a vector cache empty at the start: a learner's first day
            return {"RAG_EMBED_CACHE": "1", "RAG_CACHE_DIR": str(_fresh_cache(Path(settings.cache_dir), tmp))}

        result["core_cache_off"] = run_course(paths, {**env, "RAG_EMBED_CACHE": "0"}, ("core",))
        result["core_cache_on"] = run_course(paths, {**env, **cache_on()}, ("core",))
        result["whole_cache_on"] = run_course(paths, {**env, **cache_on()})
    result["core_minutes"] = {
        k: round(result[f"core_{k}"]["sums"]["total"] / 60, 1) for k in ("cache_off", "cache_on")
    }
    return result
