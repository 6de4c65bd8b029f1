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
    found = (isinstance(try_to_load_from_cache(model_id, f, revision=revision), str) for f in files)
    config, *weights = found
    return config and any(weights)


def where(settings: Settings, model_ids: tuple[str, ...]) -> str:
    """The hub cache folder and each model's revision, for a one-line note (revisions cut to 8 characters)."""
    from huggingface_hub.constants import HF_HUB_CACHE

    revisions = ", ".join(f"{m.split('/')[-1]}@{(settings.revision(m) or 'main')[:8]}" for m in model_ids)
    return f"{HF_HUB_CACHE}: {revisions}"


def download(dest: str | Path, settings: Settings, model_ids: tuple[str, ...]) -> list[str]:
    """Fetch each model at its pinned revision into the hub cache under `dest` (HF_HOME=dest finds them)."""
    from huggingface_hub import snapshot_download

    cache = Path(dest).expanduser() / "hub"
    return [
        snapshot_download(model_id, revision=settings.revision(model_id), cache_dir=cache)
        for model_id in model_ids
    ]


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
    if not needs_download(model_id, settings.revision(model_id)) or (
        hub if hub is not None else reachable(settings)
    ):
        return
    why = "HF_HUB_OFFLINE is set" if settings.hub_offline else "the Hugging Face hub is unreachable"
    instead = "use the offline kit (RAG_MODELS=offline)" if kind == "embedding" else "run without it"
    raise ModelLoadError(
        f"The {kind} model {model_id!r} is not in the local hub cache and {why}: go online once to "
        f"download it (with HF_HUB_OFFLINE unset), or {instead}"
        + ("." if kind == "embedding" else " (--reranker none or stand-in).")
    )


if __name__ == "__main__":  # `make models DEST=dir`: python -m helpers.offline.hub DEST
    if len(sys.argv) != 2:
        sys.exit("usage: python -m helpers.offline.hub DEST  (then HF_HOME=DEST finds the models offline)")
    settings = get_settings()
    try:
        folders = download(sys.argv[1], settings, (settings.embedding_model, settings.reranker_model))
    except Exception as exc:  # the hub client's errors (offline, unknown revision) end in one line
        sys.exit(f"error: could not download the models ({type(exc).__name__}: {' '.join(str(exc).split())})")
    print("\n".join(folders))
    home = Path(sys.argv[1]).expanduser().resolve()
    print(f"done: point HF_HOME at {home} (RAG_MODELS=auto then finds them offline)")
