"""Settings (notebook 00): every knob in one place, from the environment, then `.env`, then defaults.

Reading changes nothing in the process (`.env` values never enter `os.environ`); secrets come only from there
or a hidden prompt and never show in a `repr`. Entry points resolve the settings once and pass them on.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from logging.handlers import BufferingHandler
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"

QWEN3_EMBEDDING_ID = "Qwen/Qwen3-Embedding-0.6B"
QWEN3_RERANKER_ID = "Qwen/Qwen3-Reranker-0.6B"
# The hub commits pinned (RAG_EMBEDDING_REVISION, RAG_RERANKER_REVISION override), read from MTEB's registry,
# github.com/embeddings-benchmark/mteb at a905523d: `revision=` of each in mteb/models/model_implementations/
# qwen3_models.py (Qwen/Qwen3-Embedding-0.6B) and qwen3_reranker.py (Qwen/Qwen3-Reranker-0.6B).
QWEN3_REVISIONS = {
    QWEN3_EMBEDDING_ID: "b22da495047858cce924d27d76261e96be6febc0",
    QWEN3_RERANKER_ID: "6e9e69830b95c52b5fd889b7690dda3329508de3",
}
DEFAULT_QUERY_TASK = "Given a web search query, retrieve relevant passages that answer the query"
DOCS_URL = (
    "https://github.com/milvus-io/milvus-docs/releases/download/v2.4.6-preview/milvus_docs_2.4.x_en.zip"
)
SERVER_SCHEMES = ("http://", "https://", "tcp://", "grpc://")  # a MILVUS_URI that names a Milvus server
DEVICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N
# tqdm bars with no rate or time left: the same run prints the same text (notebook outputs stay stable)
BAR_FORMAT = "{desc}: {n_fmt}/{total_fmt} |{bar:24}|"


class ConfigError(ValueError):
    """A setting has a value the project cannot use; the message says which and how to fix it."""


def _var(env: str, default, choices: tuple[str, ...] = (), secret: bool = False, url: bool = False):
    """A setting read from the variable `env` (its type is the default's)."""
    return field(default=default, repr=not secret, metadata={"env": env, "choices": choices, "url": url})


@dataclass(frozen=True)
class Settings:
    """Resolved configuration; build it with `get_settings()`."""

    models: str = _var("RAG_MODELS", "auto", choices=("auto", "qwen3", "offline"))
    embedding_model: str = _var("RAG_EMBEDDING_MODEL", QWEN3_EMBEDDING_ID)
    reranker_model: str = _var("RAG_RERANKER_MODEL", QWEN3_RERANKER_ID)
    # Empty: the pin in QWEN3_REVISIONS for the Qwen3 ids, the hub's `main` for any other hub id.
    embedding_revision: str = _var("RAG_EMBEDDING_REVISION", "")
    reranker_revision: str = _var("RAG_RERANKER_REVISION", "")
    device: str = _var("RAG_DEVICE", "auto")
    dtype: str = _var("RAG_DTYPE", "auto", choices=("auto", "float32", "bfloat16", "float16"))
    hub_offline: bool = _var("HF_HUB_OFFLINE", False)  # load from the local hub cache only
    # What MilvusClient connects to: a Milvus Lite file (RAG_LITE_FILE) or a server URL (MILVUS_URI).
    milvus_uri: str = _var("RAG_LITE_FILE", str(DATA_DIR / "milvus_rag.db"))
    milvus_token: str = _var("MILVUS_TOKEN", "", secret=True)
    collection: str = _var("MILVUS_COLLECTION", "milvus_faq")
    openai_api_key: str = _var("OPENAI_API_KEY", "", secret=True)
    openai_base_url: str = _var("OPENAI_BASE_URL", "")
    llm_model: str = _var("LLM_MODEL", "gpt-4o")
    llm_timeout_s: float = _var("LLM_TIMEOUT", 60.0)
    llm_max_retries: int = _var("LLM_MAX_RETRIES", 2)
    # Served models (vLLM, TEI, Infinity); empty: the models run in this process.
    embedding_url: str = _var("RAG_EMBEDDING_URL", "", url=True)
    rerank_url: str = _var("RAG_RERANK_URL", "", url=True)
    model_api_key: str = _var("RAG_MODEL_API_KEY", "", secret=True)
    model_timeout_s: float = _var("RAG_MODEL_TIMEOUT", 60.0)
    model_max_retries: int = _var("RAG_MODEL_MAX_RETRIES", 2)
    docs_zip: str = _var("MILVUS_DOCS_ZIP", "")
    docs_url: str = _var("MILVUS_DOCS_URL", DOCS_URL)
    cache_dir: str = _var("RAG_CACHE_DIR", str(DATA_DIR / "cache"))
    embed_batch_size: int = _var("EMBED_BATCH_SIZE", 32)
    embed_cache: bool = _var("RAG_EMBED_CACHE", True)  # vectors kept in RAG_CACHE_DIR/embeddings.sqlite
    rerank_batch_size: int = _var("RERANK_BATCH_SIZE", 16)
    rerank_max_length: int = _var("RERANK_MAX_LENGTH", 8192)

    def with_overrides(self, **changes: object) -> Settings:
        """Return a copy with some fields changed (unknown names raise)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"Unknown setting(s): {', '.join(sorted(unknown))}.")
        return replace(self, **changes)  # type: ignore[arg-type]

    def revision(self, model_id: str) -> str | None:
        """The hub revision to load `model_id` at: the one set, else the pin (None: main, or a folder)."""
        chosen = {self.reranker_model: self.reranker_revision, self.embedding_model: self.embedding_revision}
        return None if os.path.isdir(model_id) else chosen.get(model_id) or QWEN3_REVISIONS.get(model_id)

    @property
    def is_lite(self) -> bool:
        """True when `milvus_uri` is a local Milvus Lite file rather than a server URL."""
        return not self.milvus_uri.startswith(SERVER_SCHEMES)

    @property
    def llm_configured(self) -> bool:
        """True when a chat endpoint can be called: a key, or an explicit OpenAI-compatible base URL."""
        return bool(self.openai_api_key or self.openai_base_url)


VARIABLES = ("MILVUS_URI", *(f.metadata["env"] for f in fields(Settings)))  # every variable read here


def get_settings(use_dotenv: bool = True, dotenv_path: Path | None = None) -> Settings:
    """Resolve settings from the environment and `.env` (the environment wins); changes no global state."""
    env = {**(read_dotenv(dotenv_path) if use_dotenv else {}), **os.environ}
    values = {}
    for f in fields(Settings):
        raw = (env.get(f.metadata["env"]) or "").strip()
        if raw:
            values[f.name] = _parse(f.metadata, f.default, raw)
    device = values["device"] = values.get("device", "auto").lower()
    if device not in DEVICES and not device.startswith("cuda:"):
        raise ConfigError(f"RAG_DEVICE={device!r}: use auto, cpu, cuda, cuda:N or mps.")
    if uri := (env.get("MILVUS_URI") or "").strip():
        values["milvus_uri"] = uri
    if uri and not uri.startswith(SERVER_SCHEMES):  # pymilvus rejects a path there: hence RAG_LITE_FILE
        why = "pymilvus accepts only server URLs there (a plain `import pymilvus` fails with it set)"
        fix = "Rename it to RAG_LITE_FILE in your .env or environment; this course uses the file for now."
        warnings.warn(f"MILVUS_URI={uri!r} is a file path, but {why}. {fix}", stacklevel=2)
    return Settings(**values)


def _parse(meta, default, raw: str):
    """`raw` as the type of `default`, checked: one line naming the variable when it does not fit."""
    name = meta["env"]
    if isinstance(default, bool):
        return raw.lower() in ("1", "true", "yes", "on")
    if isinstance(default, int | float):
        try:
            value = type(default)(raw)
        except ValueError:
            value = -1
        if value < 0 or (isinstance(default, float) and value == 0):
            raise ConfigError(f"{name}={raw!r}: set a positive {type(default).__name__}, or unset it.")
        return value
    if meta["choices"]:
        if raw.lower() not in meta["choices"]:
            raise ConfigError(f"{name}={raw!r}: use one of {', '.join(meta['choices'])}.")
        return raw.lower()
    if meta["url"]:
        if not raw.startswith(("http://", "https://")):
            raise ConfigError(f"{name}={raw!r} is not a URL: use http://HOST:PORT (add /v1 where needed).")
        return raw.rstrip("/")
    return raw


@contextmanager
def collect_logs(name: str) -> Iterator[list[logging.LogRecord]]:
    """Collect what logger `name` logs inside the block, instead of printing it."""
    logger = logging.getLogger(name)
    handler, saved = BufferingHandler(capacity=1_000_000), (logger.handlers, logger.propagate)
    logger.handlers, logger.propagate = [handler], False  # its own handlers print nothing meanwhile
    try:
        yield handler.buffer
    finally:
        logger.handlers, logger.propagate = saved


DOTENV_LOGGER = "dotenv.main"  # python-dotenv logs each line it cannot parse, by number, here


def read_dotenv(path: Path | None = None) -> dict[str, str]:
    """What a `.env` file (repo root by default) sets; unparsable lines warn by number, never content."""
    from dotenv import dotenv_values

    path = path or ROOT / ".env"
    if not path.is_file():
        return {}
    try:
        with collect_logs(DOTENV_LOGGER) as records:
            values = dotenv_values(path)
    except Exception as exc:  # python-dotenv raises on unreadable files, not on odd lines
        raise ConfigError(f"Could not read {path}: {type(exc).__name__}. Fix or delete the file.") from None
    bad = [str(r.args[0]) for r in records if "could not parse" in str(r.msg) and r.args]
    if bad:
        lines = f"line {bad[0]}" if len(bad) == 1 else f"lines {', '.join(bad[:-1])} and {bad[-1]}"
        warnings.warn(
            f"{path}: {lines} could not be parsed and {'was' if len(bad) == 1 else 'were'} ignored; write "
            "each setting as NAME=value, with any quote closed on the same line.",
            UserWarning,
            stacklevel=3,
        )
    return {key: value for key, value in values.items() if value is not None}


def ask_for_key(name: str = "OPENAI_API_KEY", prompt: str | None = None) -> str:
    """A secret typed at a hidden `getpass` prompt ("" when skipped); pass it on with `with_overrides`."""
    import getpass

    return getpass.getpass(prompt or f"{name} (typing is hidden; Enter to skip): ").strip()


def resolve_device(requested: str = "auto") -> str:
    """The requested torch device, else sentence-transformers' pick: CUDA, Apple MPS, ..., CPU."""
    from sentence_transformers.util import get_device_name

    return requested if requested != "auto" else get_device_name()


def resolve_dtype(device: str, requested: str = "auto") -> str:
    """bf16 on CUDA, fp32 elsewhere (MPS and CPU), unless one is requested."""
    return requested if requested != "auto" else "bfloat16" if device.startswith("cuda") else "float32"


def configure_process(device: str = "auto") -> None:
    """The process-wide switches an entry point (CLI, notebook set-up, tests, benchmarks) flips once."""
    # gRPC's C core logs a local Milvus Lite server's keepalive chatter; read when grpc loads, so set first.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    # Hugging Face tokenizers warn on every fork after first use (Jupyter and subprocesses fork).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    # The per-tensor "Loading weights" bar and hub/cache notices are noise in notebooks and logs.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if device not in ("cpu", "mps"):
        import torch

        # cuDNN's fused attention plans anew for every padded length (~10 ms of CPU each on an H100), and
        # text batches have many lengths: use the flash / memory-efficient SDPA kernels instead.
        if torch.cuda.is_available():
            torch.backends.cuda.enable_cudnn_sdp(False)
