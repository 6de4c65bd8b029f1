"""Replicas of the two Qwen3 hub repositories (real sizes, 1 random layer), loaded by the real code path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from qwen3_replicas import REPLICA_LAYERS, build_replica
from reference_reranker import reference_scores

from helpers.config import ROOT
from helpers.embedding import Embedder, load_embedder, query_prompt
from helpers.rerank import Reranker, load_reranker
from helpers.setup import choose_models

# File lists of Qwen/Qwen3-Embedding-0.6B and Qwen/Qwen3-Reranker-0.6B (besides README, LICENSE).
HUB_FILES = {
    "embedding": {
        "config.json",
        "config_sentence_transformers.json",
        "generation_config.json",
        "merges.txt",
        "model.safetensors",
        "modules.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.json",
        "1_Pooling/config.json",
    },
    "reranker": {
        "config.json",
        "generation_config.json",
        "merges.txt",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.json",
    },
}
DOCS = [
    "Milvus stores vectors and scalars in object storage such as MinIO or S3.",
    "Install Milvus on Windows with Docker Desktop.",
    "数据存储在对象存储中。",
]


@pytest.fixture(scope="module")
def replicas(base_settings) -> dict[str, Path]:
    return {kind: build_replica(kind, base_settings.cache_dir) for kind in ("embedding", "reranker")}


@pytest.fixture(scope="module")
def qwen3_settings(base_settings, replicas):
    """The `qwen3` kit pointed at the replica folders, as RAG_EMBEDDING_MODEL/RAG_RERANKER_MODEL do."""
    return base_settings.with_overrides(
        models="qwen3",
        embedding_model=str(replicas["embedding"]),
        reranker_model=str(replicas["reranker"]),
    )


@pytest.mark.parametrize("kind", ["embedding", "reranker"])
def test_hub_file_layout(replicas, kind):
    folder = replicas[kind]
    files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert HUB_FILES[kind] <= files
    assert folder.name == {"embedding": "Qwen3-Embedding-0.6B", "reranker": "Qwen3-Reranker-0.6B"}[kind]


HUB_CONFIG = json.loads((Path(__file__).parent / "data" / "qwen3_hub_config.json").read_text())


@pytest.mark.parametrize("kind", ["embedding", "reranker"])
def test_config_equals_the_hub_file_but_for_the_layer_count(replicas, kind):
    """Checked against the published config.json (tests/data), not against the module that wrote it."""
    config = json.loads((replicas[kind] / "config.json").read_text())
    hub = HUB_CONFIG[{"embedding": "Qwen/Qwen3-Embedding-0.6B", "reranker": "Qwen/Qwen3-Reranker-0.6B"}[kind]]
    assert config["num_hidden_layers"] == REPLICA_LAYERS < hub["num_hidden_layers"]
    assert {k: v for k, v in config.items() if k != "num_hidden_layers"} == {
        k: v for k, v in hub.items() if k != "num_hidden_layers"
    }


@pytest.mark.parametrize("kind", ["embedding", "reranker"])
def test_weights_are_bf16_with_the_real_shapes(replicas, kind):
    from safetensors import safe_open

    with safe_open(str(replicas[kind] / "model.safetensors"), framework="np") as f:
        keys = set(f.keys())
    prefix = "" if kind == "embedding" else "model."  # the embedding repo stores the bare Qwen3Model
    assert f"{prefix}embed_tokens.weight" in keys
    assert f"{prefix}layers.{REPLICA_LAYERS - 1}.mlp.down_proj.weight" in keys
    assert f"{prefix}layers.{REPLICA_LAYERS}.mlp.down_proj.weight" not in keys
    header = _safetensors_header(replicas[kind] / "model.safetensors")
    embed = header[f"{prefix}embed_tokens.weight"]
    assert embed["dtype"] == "BF16" and embed["shape"] == [151669, 1024]
    assert header[f"{prefix}layers.0.mlp.gate_proj.weight"]["shape"] == [3072, 1024]
    assert header[f"{prefix}layers.0.self_attn.q_proj.weight"]["shape"] == [16 * 128, 1024]
    assert header[f"{prefix}layers.0.self_attn.k_proj.weight"]["shape"] == [8 * 128, 1024]


def _safetensors_header(path: Path) -> dict:
    with path.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(size))


def test_sentence_transformers_files(replicas):
    folder = replicas["embedding"]
    modules = json.loads((folder / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_lasttoken"] is True and pooling["word_embedding_dimension"] == 1024
    prompts = json.loads((folder / "config_sentence_transformers.json").read_text())["prompts"]
    assert prompts == {"query": query_prompt(), "document": ""}


def test_the_qwen3_kit_takes_the_replica_folders(qwen3_settings, replicas):
    choice = choose_models(qwen3_settings)
    assert choice.kit == "qwen3" and not choice.reranker_is_stand_in
    assert choice.as_dict()["reranker"] == str(replicas["reranker"])


def test_embedding_replica_through_load_embedder(qwen3_settings):
    st = load_embedder(qwen3_settings.embedding_model, qwen3_settings)
    assert type(st[0].model).__name__ == "Qwen3Model" and st.tokenizer.padding_side == "left"
    assert st.tokenizer("yes")["input_ids"] == [9693, 151643]
    embedder = Embedder(st, qwen3_settings.embedding_model)
    assert embedder.full_dim == 1024 and embedder.instruction_aware
    docs = embedder.encode_documents(DOCS)
    assert docs.shape == (3, 1024)
    assert np.allclose(np.linalg.norm(docs, axis=1), 1, atol=1e-5)
    # encode_queries applies the query prompt of config_sentence_transformers.json; documents get none.
    query = "How is data stored in milvus?"
    by_prompt = st.encode([query], prompt_name="query", normalize_embeddings=True)
    by_hand = st.encode([query_prompt() + query], normalize_embeddings=True)
    queries = embedder.encode_queries([query])
    assert np.allclose(queries, by_prompt, atol=1e-4) and np.allclose(queries, by_hand, atol=1e-4)
    assert not np.allclose(queries, embedder.encode_documents([query]), atol=1e-3)


def test_reranker_replica_fast_path_equals_the_reference(qwen3_settings):
    ce = load_reranker(qwen3_settings.reranker_model, qwen3_settings)
    assert type(ce.model).__name__ == "Qwen3ForCausalLM"
    assert ce.tokenizer.convert_tokens_to_ids(["yes", "no"]) == [9693, 2152]
    reranker = Reranker(ce, qwen3_settings.reranker_model)
    query = "Where does Milvus store data?"
    fast = reranker.score(query, DOCS)
    ref = reference_scores(ce.model, ce.tokenizer, query, DOCS)
    assert fast.shape == (3,) and np.abs(fast - ref).max() < 1e-4


def test_built_once_and_the_script_prints_the_folders(replicas, base_settings):
    stamp = (replicas["reranker"] / "model.safetensors").stat().st_mtime_ns
    script = ROOT / "tests" / "qwen3_replicas.py"
    cmd = [sys.executable, str(script), base_settings.cache_dir]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, check=True)
    assert done.stdout.split() == [str(replicas["embedding"]), str(replicas["reranker"])]
    assert (replicas["reranker"] / "model.safetensors").stat().st_mtime_ns == stamp
