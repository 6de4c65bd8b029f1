"""Wall time of each course notebook, top to bottom, with the models the environment selects.

`python -m benchmarks notebooks` times the offline kit. `--only qwen3-0.6b-shape` runs the qwen3 kit on
the Qwen3-0.6B-shaped stand-ins (28 layers, random weights): the real models' cost on this machine
without downloading them. Each notebook runs in a fresh kernel on its own Milvus Lite file, as a
learner's would (index built on first use); outputs are not kept.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from benchmarks.models import random_06b
from helpers.config import ROOT


def run(settings, device: str, quick: bool, only: str = "", smoke: bool = False) -> dict:
    """Seconds per notebook (course notebooks only; `quick` stops after 00-02, `smoke` after 00)."""
    from notebook_runner import run_notebook  # the tests' runner (tests/ is on the path: benchmarks/__init__)

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
    seconds: dict[str, float] = {}
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as lite_dir:
        env.update(MILVUS_URI="", RAG_LITE_FILE=str(Path(lite_dir) / "course.db"))
        for path in paths:
            start = time.perf_counter()
            failure = run_notebook(path, env, timeout=3600)
            seconds[path.stem] = round(time.perf_counter() - start, 1)
            if failure is not None:
                failures[path.stem] = str(failure)
    return {"kit": kit, "seconds": seconds, "total_s": round(sum(seconds.values()), 1), "failures": failures}
