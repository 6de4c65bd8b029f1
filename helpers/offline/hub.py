"""Whether the Hugging Face hub can supply a model: the question behind choosing the offline kit.

`choose_models` (helpers.setup) asks it once; `check_downloadable` turns "not cached and no hub" into one
line at once, instead of the hub client's minute of retries per file. `download` (`make models DEST=dir`)
fetches both Qwen3 models at their pinned commits into a hub-cache folder to copy onto USB sticks or a share.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from helpers.config import QWEN3_EMBEDDING_ID, Settings, get_settings
from helpers.offline.standins import MINILM_ID, is_stand_in


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says which, why, and what to do."""


def is_cached(model_id: str, revision: str | None = None) -> bool:
    """True when the hub cache holds this model's config and weights (file or shard index) at `revision`."""
    from huggingface_hub import try_to_load_from_cache

    files = ("config.json", "model.safetensors", "model.safetensors.index.json")
    config, *weights = (
        isinstance(try_to_load_from_cache(model_id, f, revision=revision), str) for f in files
    )
    return config and any(weights)


def where(settings: Settings) -> str:
    """The hub cache folder and both models' revisions (8 characters), for a one-line note."""
    from huggingface_hub.constants import HF_HUB_CACHE

    ids = (settings.embedding_model, settings.reranker_model)
    return f"{HF_HUB_CACHE}: " + ", ".join(
        f"{m.split('/')[-1]}@{(settings.revision(m) or 'main')[:8]}" for m in ids
    )


def download(dest: str, settings: Settings) -> list[str]:
    """Fetch both models at their pinned revisions into the hub cache `dest`/hub (HF_HOME=dest finds them)."""
    from huggingface_hub import snapshot_download

    ids, cache = (settings.embedding_model, settings.reranker_model), Path(dest).expanduser() / "hub"
    return [snapshot_download(m, revision=settings.revision(m), cache_dir=cache) for m in ids]


def needs_download(model_id: str, revision: str | None = None) -> bool:
    """True for a hub model missing from the local hub cache (not a stand-in, a folder or the offline kit)."""
    if is_stand_in(model_id) or model_id == MINILM_ID or os.path.isdir(model_id):
        return False
    try:
        return not is_cached(model_id, revision)
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
    hub = (
        hub
        if hub is not None or not needs_download(model_id, settings.revision(model_id))
        else reachable(settings)
    )
    if not needs_download(model_id, settings.revision(model_id)) or hub:
        return
    why = "HF_HUB_OFFLINE is set" if settings.hub_offline else "the Hugging Face hub is unreachable"
    instead = "use the offline kit (RAG_MODELS=offline)" if kind == "embedding" else "run without it"
    raise ModelLoadError(
        f"The {kind} model {model_id!r} is not in the local hub cache and {why}: go online once to "
        f"download it (with HF_HUB_OFFLINE unset), or {instead}"
        + ("." if kind == "embedding" else " (--reranker none or stand-in).")
    )


if __name__ == "__main__":  # `make models DEST=dir`
    try:
        print(*download(sys.argv[1], get_settings()), f"done: HF_HOME={sys.argv[1]} finds them", sep="\n")
    except Exception as exc:  # the hub client's errors (offline, unknown revision) in one line
        sys.exit(f"error: could not download the models ({type(exc).__name__}: {' '.join(str(exc).split())})")
