"""Set-up for the course notebooks: one call resolves settings, models, corpus and Milvus file.

`setup_notebook("03")` is each notebook's entry point. It resolves everything once and returns it,
so later cells pass these values down instead of reading the environment again:

* the settings, with a Milvus Lite file of the notebook's own (`<lite dir>/notebooks/03.db`), so two
  notebooks open at the same time never wait for each other's file lock (a server URI is kept as is);
* which models run (the Qwen3 pair, or the offline kit) and the device;
* the corpus: the Milvus FAQ when its archive is available, else the project's sample corpus,
  with the labelled questions that belong to it.

It prints one short callout saying which models and corpus produced the outputs, and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from helpers.config import DATA_DIR, Settings, get_settings, resolve_device
from helpers.data import find_archive
from helpers.models import MINILM_ID, ModelChoice, choose_models
from helpers.switches import configure_notebook

T = TypeVar("T")
QUESTIONS = {
    "milvus-faq": DATA_DIR / "eval" / "milvus_faq_questions.jsonl",
    "sample": DATA_DIR / "eval" / "sample_questions.jsonl",
}


@dataclass(frozen=True)
class NotebookSetup:
    """What a notebook runs with, resolved once by `setup_notebook`."""

    settings: Settings
    choice: ModelChoice
    device: str
    corpus: str
    corpus_note: str

    @property
    def questions(self) -> Path:
        """The labelled questions (JSONL) written for this corpus."""
        return QUESTIONS[self.corpus]

    @property
    def real_reranker(self) -> bool:
        """True when the reranker is a trained model (its scores mean something)."""
        return not self.choice.reranker_is_stand_in


def notebook_lite_file(settings: Settings, name: str) -> Settings:
    """The settings with a Milvus Lite file for this notebook alone; a server URI is left as it is."""
    if not settings.is_lite:
        return settings
    lite = Path(settings.milvus_uri).expanduser()
    return replace(settings, milvus_uri=str(lite.parent / "notebooks" / f"{name}.db"))


def _find_corpus(settings: Settings) -> tuple[str, str]:
    """The Milvus FAQ when its archive is at hand (or downloads), else the sample corpus; and why."""
    path, why = find_archive(settings)
    if path is not None:
        return "milvus-faq", "the Milvus 2.4.x FAQ"
    return "sample", (
        f"the project's **sample corpus** (`data/sample_faq`), because the Milvus docs archive is not "
        f"available ({why}); set `MILVUS_DOCS_ZIP` or go online once for the FAQ"
    )


def callout(setup: NotebookSetup) -> str:
    """The one-paragraph note (markdown) on which models and corpus produced a notebook's outputs."""
    choice = setup.choice
    if choice.kit == "offline":
        embedder = "all-MiniLM-L6-v2" if choice.embedding_model == MINILM_ID else choice.embedding_model
        models = (
            f"the **offline kit**: `{embedder}` embeds (a small real English model), and the reranker is a "
            "tiny Qwen3 stand-in with random weights, used only to show the mechanics. "
            "For the real Qwen3 models set `RAG_MODELS=qwen3` (internet once) and run again"
        )
    else:
        models = f"`{choice.embedding_model}` and `{choice.reranker_model}` ({choice.reason})"
    return f"> **Outputs on this page** come from {models}. Corpus: {setup.corpus_note}."


def setup_notebook(name: str, seed: int = 0) -> NotebookSetup:
    """Resolve settings, models, device and corpus for notebook `name` (e.g. "03"); show the callout."""
    settings = notebook_lite_file(get_settings(), name)
    configure_notebook(seed, settings.device)
    choice = choose_models(settings)
    corpus, note = _find_corpus(settings)
    setup = NotebookSetup(settings, choice, resolve_device(settings.device), corpus, note)
    _display_markdown(callout(setup))
    return setup


def _display_markdown(text: str) -> None:
    try:
        from IPython.display import Markdown, display
    except ImportError:
        print(text)
        return
    display(Markdown(text))


def progress(items: Iterable[T], total: int, label: str) -> Iterator[T]:
    """Yield `items` while one line in the notebook shows a bar and the time left; stdout stays clean.

    The line is updated in place while the cell runs and ends as `label · total`, the same text it
    started with, so a saved notebook shows a stable line (regression tests compare it).
    """
    try:
        from IPython.display import Pretty, display

        handle = display(Pretty(f"{label} · {total}"), display_id=True)
    except ImportError:
        handle = None
    start = time.perf_counter()
    for done, item in enumerate(items, start=1):
        yield item
        if handle is not None:
            left = (time.perf_counter() - start) / done * (total - done)
            bar = "█" * round(24 * done / max(total, 1))
            handle.update(Pretty(f"{label} · {done}/{total} |{bar:<24}| about {left:.0f} s left"))
    if handle is not None:
        handle.update(Pretty(f"{label} · {total}"))


def shorten(text: str, width: int = 90) -> str:
    """One line of at most `width` characters, for tables."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
