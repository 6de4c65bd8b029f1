"""All settings in one place: defaults, overridden by environment variables or a `.env` file.

Every knob a learner may turn lives here, so notebooks, the CLI and the tests read the same values.
Secrets (`OPENAI_API_KEY`, `MILVUS_TOKEN`) come only from the environment, `.env` or a hidden
`getpass` prompt (`ask_for_key`); `Settings` never shows them in its `repr`. Reading settings changes
nothing in the process: `.env` values go into `Settings`, never into `os.environ`.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"

QWEN3_EMBEDDING_ID = "Qwen/Qwen3-Embedding-0.6B"
QWEN3_RERANKER_ID = "Qwen/Qwen3-Reranker-0.6B"
DEFAULT_QUERY_TASK = "Given a web search query, retrieve relevant passages that answer the query"
DEFAULT_RERANK_TASK = DEFAULT_QUERY_TASK

MODEL_MODES = ("auto", "qwen3", "offline")
SERVER_SCHEMES = ("http://", "https://", "tcp://", "grpc://")  # a MILVUS_URI that names a Milvus server
DTYPES = ("auto", "float32", "bfloat16", "float16", "int8")  # int8: dynamic quantisation, CPU only


class ConfigError(ValueError):
    """A setting has a value the project cannot use; the message says which and how to fix it."""


class _Records(logging.Handler):
    """Keeps log records in a list instead of printing them."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def collect_logs(name: str) -> Iterator[list[logging.LogRecord]]:
    """Collect what logger `name` logs inside the block, instead of printing it."""
    logger = logging.getLogger(name)
    handler, propagate = _Records(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


# python-dotenv logs each line it cannot parse, by number only, through this logger.
DOTENV_LOGGER = "dotenv.main"


def read_dotenv(path: Path | None = None) -> dict[str, str]:
    """The variables a `.env` file (repo root by default) sets; {} when there is none. Changes nothing.

    Lines python-dotenv cannot parse are skipped with one warning that names the file and the lines
    (never their content, which may hold a key).
    """
    from dotenv import dotenv_values

    path = path or ROOT / ".env"
    if not path.is_file():
        return {}
    try:
        with collect_logs(DOTENV_LOGGER) as records:
            values = dotenv_values(path)
    except Exception as exc:  # python-dotenv raises on unreadable files, not on odd lines
        raise ConfigError(f"Could not read {path}: {type(exc).__name__}. Fix or delete the file.") from None
    if records:
        warnings.warn(_unparsed_lines(path, records), UserWarning, stacklevel=3)
    return {key: value for key, value in values.items() if value is not None}


def _unparsed_lines(path: Path, records: list[logging.LogRecord]) -> str:
    """One message for what python-dotenv logged about `path`: the lines it could not parse, by number."""
    bad = [str(r.args[0]) for r in records if "could not parse" in str(r.msg) and r.args]
    if not bad:  # a message this code does not know: pass it on as it is
        return f"{path}: {'; '.join(r.getMessage() for r in records)}"
    if len(bad) == 1:
        which = f"line {bad[0]} could not be parsed and was"
    else:
        which = f"lines {', '.join(bad[:-1])} and {bad[-1]} could not be parsed and were"
    how = "write each setting as NAME=value, with any quote closed on the same line"
    return f"{path}: {which} ignored; {how}."


def ask_for_key(name: str = "OPENAI_API_KEY", prompt: str | None = None) -> str:
    """Ask for a secret with `getpass` (hidden, never in outputs) and return it ("" when skipped).

    Nothing is written anywhere: put the value into settings, e.g.
    `settings.with_overrides(openai_api_key=ask_for_key())`.
    """
    import getpass

    return getpass.getpass(prompt or f"{name} (typing is hidden; Enter to skip): ").strip()


class _Env:
    """The process environment over `.env`: a variable set in the environment wins."""

    def __init__(self, dotenv: dict[str, str]):
        self.values = {**dotenv, **os.environ}

    def str(self, name: str, default: str) -> str:
        value = (self.values.get(name) or "").strip()
        return value if value else default

    def int(self, name: str, default: int) -> int:
        raw = self.str(name, "")
        if not raw:
            return default
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(
                f"{name}={raw!r} is not an integer; set it to a whole number or unset it."
            ) from None

    def seconds(self, name: str, default: float) -> float:
        raw = self.str(name, "")
        try:
            value = float(raw) if raw else default
        except ValueError:
            value = -1.0
        if value <= 0:
            raise ConfigError(f"{name}={raw!r}: set a positive number of seconds, or unset it.")
        return value

    def url(self, name: str) -> str:
        value = self.str(name, "").rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ConfigError(
                f"{name}={value!r} is not a URL: use http://HOST:PORT (add /v1 where the server wants it)."
            )
        return value

    def flag(self, name: str) -> bool:
        return self.str(name, "").lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    """Resolved configuration; build it with `get_settings()`."""

    models: str = "auto"
    embedding_model: str = QWEN3_EMBEDDING_ID
    reranker_model: str = QWEN3_RERANKER_ID
    device: str = "auto"
    dtype: str = "auto"
    hub_offline: bool = False  # HF_HUB_OFFLINE: load from the local hub cache only, never ask the hub
    # What MilvusClient connects to: the Milvus Lite file (RAG_LITE_FILE) or a server URL (MILVUS_URI).
    milvus_uri: str = str(DATA_DIR / "milvus_rag.db")
    milvus_token: str = field(default="", repr=False)
    collection: str = "milvus_faq"
    openai_api_key: str = field(default="", repr=False)
    openai_base_url: str = ""
    llm_model: str = "gpt-4o"
    llm_timeout_s: float = 60.0
    llm_max_retries: int = 2
    # Served models (vLLM, TEI, Infinity): embeddings from an OpenAI-compatible base URL, reranking from a
    # server with a /rerank route; empty means the models run in this process.
    embedding_url: str = ""
    rerank_url: str = ""
    model_api_key: str = field(default="", repr=False)
    model_timeout_s: float = 60.0
    model_max_retries: int = 2
    docs_zip: str = ""
    docs_url: str = (
        "https://github.com/milvus-io/milvus-docs/releases/download/v2.4.6-preview/milvus_docs_2.4.x_en.zip"
    )
    cache_dir: str = str(DATA_DIR / "cache")
    rerank_max_length: int = 8192
    rerank_token_budget: int = 16384
    embed_batch_size: int = 256

    def with_overrides(self, **changes: object) -> Settings:
        """Return a copy with some fields changed (unknown names raise)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ConfigError(
                f"Unknown setting(s): {', '.join(sorted(unknown))}. Known: {', '.join(sorted(known))}."
            )
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def is_lite(self) -> bool:
        """True when `milvus_uri` is a local Milvus Lite file rather than a server URL."""
        return not self.milvus_uri.startswith(SERVER_SCHEMES)

    @property
    def llm_configured(self) -> bool:
        """True when a chat endpoint can be called: a key, or an explicit OpenAI-compatible base URL."""
        return bool(self.openai_api_key or self.openai_base_url)


def get_settings(use_dotenv: bool = True, dotenv_path: Path | None = None) -> Settings:
    """Resolve settings from the environment and `.env` (the environment wins); changes no global state."""
    env = _Env(read_dotenv(dotenv_path) if use_dotenv else {})
    models = env.str("RAG_MODELS", "auto").lower()
    if models not in MODEL_MODES:
        raise ConfigError(f"RAG_MODELS={models!r} is not one of {', '.join(MODEL_MODES)}.")
    device = env.str("RAG_DEVICE", "auto").lower()
    if device not in ("auto", "cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise ConfigError(f"RAG_DEVICE={device!r}: use auto, cpu, cuda, cuda:N or mps.")
    dtype = env.str("RAG_DTYPE", "auto").lower()
    if dtype not in DTYPES:
        choices = f"{', '.join(DTYPES[:-1])} or {DTYPES[-1]}"
        raise ConfigError(f"RAG_DTYPE={dtype!r}: use {choices} (int8: CPU only).")
    defaults = Settings()
    return Settings(
        models=models,
        embedding_model=env.str("RAG_EMBEDDING_MODEL", defaults.embedding_model),
        reranker_model=env.str("RAG_RERANKER_MODEL", defaults.reranker_model),
        device=device,
        dtype=dtype,
        hub_offline=env.flag("HF_HUB_OFFLINE"),
        milvus_uri=_milvus_target(env, defaults.milvus_uri),
        milvus_token=env.str("MILVUS_TOKEN", ""),
        collection=env.str("MILVUS_COLLECTION", defaults.collection),
        openai_api_key=env.str("OPENAI_API_KEY", ""),
        openai_base_url=env.str("OPENAI_BASE_URL", ""),
        llm_model=env.str("LLM_MODEL", defaults.llm_model),
        llm_timeout_s=env.seconds("LLM_TIMEOUT", defaults.llm_timeout_s),
        llm_max_retries=env.int("LLM_MAX_RETRIES", defaults.llm_max_retries),
        embedding_url=env.url("RAG_EMBEDDING_URL"),
        rerank_url=env.url("RAG_RERANK_URL"),
        model_api_key=env.str("RAG_MODEL_API_KEY", ""),
        model_timeout_s=env.seconds("RAG_MODEL_TIMEOUT", defaults.model_timeout_s),
        model_max_retries=env.int("RAG_MODEL_MAX_RETRIES", defaults.model_max_retries),
        docs_zip=env.str("MILVUS_DOCS_ZIP", ""),
        docs_url=env.str("MILVUS_DOCS_URL", defaults.docs_url),
        cache_dir=env.str("RAG_CACHE_DIR", defaults.cache_dir),
        rerank_max_length=env.int("RERANK_MAX_LENGTH", defaults.rerank_max_length),
        rerank_token_budget=env.int("RERANK_TOKEN_BUDGET", defaults.rerank_token_budget),
        embed_batch_size=env.int("EMBED_BATCH_SIZE", defaults.embed_batch_size),
    )


def _milvus_target(env: _Env, default_lite_file: str) -> str:
    """MILVUS_URI when it is a server URL, else the Milvus Lite file from RAG_LITE_FILE.

    pymilvus reads MILVUS_URI itself at import and rejects anything but a URL, so the Lite file has a
    variable of its own. An older `.env` with a file path in MILVUS_URI still works, with a warning.
    """
    uri = env.str("MILVUS_URI", "")
    if uri.startswith(SERVER_SCHEMES):
        return uri
    if uri:
        warnings.warn(
            f"MILVUS_URI={uri!r} is a file path, but pymilvus accepts only server URLs there (a plain "
            "`import pymilvus` fails with it set). Rename it to RAG_LITE_FILE in your .env or environment; "
            "this course uses the file for now.",
            UserWarning,
            stacklevel=3,
        )
        return uri
    return env.str("RAG_LITE_FILE", default_lite_file)


def resolve_device(requested: str = "auto") -> str:
    """Pick the torch device: CUDA, else Apple MPS, else CPU (unless one is requested)."""
    if requested != "auto":
        return requested
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(device: str, requested: str = "auto") -> str:
    """bf16 on CUDA, fp32 elsewhere (MPS and CPU), unless one is requested.

    `int8` means fp32 weights with dynamic int8 quantisation of the Linear layers, CPU only.
    """
    if requested == "int8" and device != "cpu":
        raise ConfigError(
            f"RAG_DTYPE=int8 (dynamic int8 quantisation) runs on the CPU only, not on {device!r}: "
            "unset RAG_DTYPE (bfloat16 on CUDA) or set RAG_DEVICE=cpu."
        )
    if requested != "auto":
        return requested
    return "bfloat16" if device.startswith("cuda") else "float32"
