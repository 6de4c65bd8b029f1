"""Whether the Hugging Face hub can supply a model: the question behind choosing the offline kit.

`choose_models` (helpers.setup) asks it once; `check_downloadable` turns "not cached and no hub" into one
line at once, instead of the hub client's minute of retries per file.
"""

from __future__ import annotations

import os

from helpers.config import QWEN3_EMBEDDING_ID, Settings
from helpers.offline.standins import MINILM_ID, is_stand_in


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says which, why, and what to do."""


def is_cached(model_id: str) -> bool:
    """True when the hub cache holds this model's config and weights (one file, or a sharded index)."""
    from huggingface_hub import try_to_load_from_cache

    files = ("config.json", "model.safetensors", "model.safetensors.index.json")
    config, *weights = (isinstance(try_to_load_from_cache(model_id, f), str) for f in files)
    return config and any(weights)


def needs_download(model_id: str) -> bool:
    """True for a hub model missing from the local hub cache (not a stand-in, a folder or the offline kit)."""
    if is_stand_in(model_id) or model_id == MINILM_ID or os.path.isdir(model_id):
        return False
    try:
        return not is_cached(model_id)
    except ValueError:  # not a hub id (the hub client's validation error): the loader explains it
        return False


def reachable(settings: Settings, timeout: float = 3.0) -> bool:
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


def check_downloadable(kind: str, model_id: str, settings: Settings, hub: bool | None = None) -> None:
    """Fail in one line when a hub model is neither cached nor downloadable (`hub`: the known answer)."""
    if not needs_download(model_id) or (hub if hub is not None else reachable(settings)):
        return
    why = "HF_HUB_OFFLINE is set" if settings.hub_offline else "the Hugging Face hub is unreachable"
    instead = "use the offline kit (RAG_MODELS=offline)" if kind == "embedding" else "run without it"
    raise ModelLoadError(
        f"The {kind} model {model_id!r} is not in the local hub cache and {why}: go online once to "
        f"download it (with HF_HUB_OFFLINE unset), or {instead}"
        + ("." if kind == "embedding" else " (--reranker none or stand-in).")
    )
