"""Set-up (notebook 00): which models run and why, how they load, and every notebook's first cell.

`choose_models` resolves `RAG_MODELS` once (the Qwen3 pair, or the offline kit); `load_model` loads either or
fails in one line; `setup_notebook("03")` resolves everything a notebook runs with and says which it was.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from helpers.chunking import CORPORA, find_archive
from helpers.config import DATA_DIR, Settings, configure_process, get_settings, resolve_device, resolve_dtype
from helpers.offline import hub
from helpers.offline.hub import ModelLoadError
from helpers.offline.standins import MINILM_ID, TINY_RERANKER_ID, is_stand_in, model_path
from helpers.offline.standins import TINY_EMBEDDER_ID as TINY_EMBEDDER_ID  # 02's padding pitfall
from helpers.offline.tokenizer import qwen3_tokenizer_dir

STAND_IN_LABEL = "stand-in (random weights)"
QUESTIONS = {corpus: DATA_DIR / "eval" / f"{corpus.replace('-', '_')}_questions.jsonl" for corpus in CORPORA}


@dataclass(frozen=True)
class ModelChoice:
    """The resolved embedding and reranker ids, the kit they form, and why it was chosen."""

    kit: str  # qwen3, offline, or served (RAG_EMBEDDING_URL)
    embedding_model: str
    reranker_model: str  # what reranks by default in this kit: the trained one, or the offline stand-in
    reason: str
    trained_reranker: str  # RAG_RERANKER_MODEL, which `--reranker qwen3` asks for in any kit
    embedding_url: str = ""
    rerank_url: str = ""
    hub: bool | None = None  # whether the hub answered when `choose_models` asked it; None: not asked

    @property
    def reranker_is_stand_in(self) -> bool:
        """True when the default reranker's scores are random (a stand-in)."""
        return is_stand_in(self.reranker_model)

    def as_dict(self) -> dict[str, str]:
        """JSON-friendly summary, with the stand-in labelled as such."""
        label = f": {STAND_IN_LABEL}" if self.reranker_is_stand_in else ""
        out = {"kit": self.kit, "embedding": self.embedding_model, "reranker": self.reranker_model + label}
        urls = {"embedding_url": self.embedding_url, "rerank_url": self.rerank_url}
        return out | {key: url for key, url in urls.items() if url}


def choose_models(settings: Settings) -> ModelChoice:
    """Resolve `RAG_MODELS` (auto, qwen3, offline; served with RAG_EMBEDDING_URL) once, at an entry point."""
    trained = settings.reranker_model
    urls = {"embedding_url": settings.embedding_url, "rerank_url": settings.rerank_url}
    if settings.embedding_url:  # served models: nothing to load or download here
        why = f"RAG_EMBEDDING_URL={settings.embedding_url}"
        return ModelChoice("served", settings.embedding_model, trained, why, trained, **urls)
    qwen = ModelChoice("qwen3", settings.embedding_model, trained, "", trained, **urls)
    offline = ModelChoice("offline", MINILM_ID, TINY_RERANKER_ID, "", trained, **urls)
    if settings.models in ("qwen3", "offline"):
        return replace(
            qwen if settings.models == "qwen3" else offline, reason=f"RAG_MODELS={settings.models}"
        )
    if all(
        hub.is_cached(m, settings.revision(m)) for m in (settings.embedding_model, settings.reranker_model)
    ):
        return replace(qwen, reason=f"auto: Qwen3 weights found in the hub cache ({hub.where(settings)})")
    if hub.reachable(settings):
        return replace(qwen, reason="auto: the Hugging Face hub is reachable", hub=True)
    why = "HF_HUB_OFFLINE is set" if settings.hub_offline else "Qwen3 weights not cached, hub unreachable"
    return replace(offline, reason=f"auto: {why}", hub=False)


def load_model(kind: str, model_id: str, settings: Settings, loader, hub_ok: bool | None = None, **kwargs):
    """A sentence-transformers `loader` class on the configured device and dtype, failing in one line."""
    import torch

    hub.check_downloadable(kind, model_id, settings, hub_ok)
    device = resolve_device(settings.device)
    model_kwargs: dict = {"dtype": getattr(torch, resolve_dtype(device, settings.dtype))}
    if device == "mps":  # SDPA on MPS returns NaN embeddings for Qwen3 with left padding
        model_kwargs["attn_implementation"] = "eager"
    path = model_path(model_id, settings.cache_dir)
    if path == model_id and (revision := settings.revision(model_id)):  # a hub id, at its pinned commit
        kwargs["revision"] = revision
    try:
        return loader(
            path, device=device, model_kwargs=model_kwargs, local_files_only=settings.hub_offline, **kwargs
        )
    except (OSError, ValueError) as exc:
        hint = (
            "It is not in the local hub cache and HF_HUB_OFFLINE is set: unset it and go online once."
            if settings.hub_offline
            else "Check the model id (and your internet connection), or use RAG_MODELS=offline."
        )
        detail = " ".join(str(exc).split()).rstrip(".")
        raise ModelLoadError(
            f"Could not load the {kind} model {model_id!r} ({type(exc).__name__}: {detail}). {hint}"
        ) from None


# --- notebooks ------------------------------------------------------------------------------------


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

    @property
    def dtype(self) -> str:
        """The torch dtype the models load in here: bfloat16 on CUDA, float32 elsewhere."""
        return resolve_dtype(self.device, self.settings.dtype)

    def path(self, model_id: str) -> str:
        """What to give `SentenceTransformer`/`CrossEncoder`: a hub id, or the offline kit's local folder."""
        return model_path(model_id, self.settings.cache_dir)

    def revision(self, model_id: str) -> str | None:
        """The hub commit to load `model_id` at (`revision=`): the course's pin; None for a local folder."""
        return self.settings.revision(model_id) if self.path(model_id) == model_id else None

    def qwen3_tokenizer(self) -> str:
        """Where Qwen3-Embedding's tokenizer loads from: the model itself, or the offline kit's exact copy."""
        if self.choice.kit == "qwen3":
            return self.choice.embedding_model
        return str(qwen3_tokenizer_dir("embedding", self.settings.cache_dir))


def notebook_lite_file(settings: Settings, name: str) -> Settings:
    """The settings with a Lite file for this notebook alone (two open notebooks never share a file lock)."""
    if not settings.is_lite:
        return settings
    lite = Path(settings.milvus_uri).expanduser()
    return replace(settings, milvus_uri=str(lite.parent / "notebooks" / f"{name}.db"))


def setup_notebook(name: str, seed: int = 0) -> NotebookSetup:
    """Settings, models, device, corpus, seeds and display for notebook `name` ("03"), shown in a note."""
    import numpy as np
    import pandas as pd

    settings = notebook_lite_file(get_settings(), name)
    random.seed(seed)
    np.random.seed(seed)
    pd.set_option("display.precision", 4, "display.max_colwidth", 90, "display.width", 140)
    # tqdm.auto without ipywidgets warns once per kernel; the notebooks use tqdm's text bar.
    warnings.filterwarnings("ignore", message=".*IProgress not found.*")
    configure_process(settings.device)
    import torch

    torch.manual_seed(seed)
    choice = choose_models(settings)
    path, why = find_archive(settings)
    corpus, note = ("milvus-faq", "the Milvus 2.4.x FAQ") if path is not None else ("sample", "")
    if corpus == "sample":
        note = (
            "the project's **sample corpus** (`data/sample_faq`), because the Milvus docs archive is not "
            f"available ({why}); set `MILVUS_DOCS_ZIP` or go online once for the FAQ"
        )
    setup = NotebookSetup(settings, choice, resolve_device(settings.device), corpus, note)
    from IPython.display import Markdown, display

    display(Markdown(callout(setup)))
    return setup


def callout(setup: NotebookSetup) -> str:
    """The one-paragraph note (markdown) on which models and corpus produced a notebook's outputs."""
    choice = setup.choice
    if choice.kit == "offline":
        models = (
            "the **offline kit**: `all-MiniLM-L6-v2` embeds (a small real English model), and the reranker "
            "is a tiny Qwen3 stand-in with random weights, used only to show the mechanics. For the real "
            "Qwen3 models set `RAG_MODELS=qwen3` (internet once) and run again"
        )
    else:
        models = f"`{choice.embedding_model}` and `{choice.reranker_model}` ({choice.reason})"
    return f"> **Outputs on this page** come from {models}. Corpus: {setup.corpus_note}."
