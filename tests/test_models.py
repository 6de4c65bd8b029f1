"""Model choice (auto, qwen3, offline) and the deterministic tiny Qwen3 stand-ins."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import load_file

from helpers.config import QWEN3_EMBEDDING_ID
from helpers.models import (
    MINILM_ID,
    TINY_EMBEDDER_ID,
    TINY_RERANKER_ID,
    ModelLoadError,
    build_tiny_qwen3,
    check_downloadable,
    choose_models,
    load_embedder,
    load_reranker,
    needs_download,
)


def test_offline_kit(base_settings):
    choice = choose_models(base_settings.with_overrides(models="offline"))
    assert (choice.kit, choice.embedding_model, choice.reranker_model) == (
        "offline",
        MINILM_ID,
        TINY_RERANKER_ID,
    )
    assert choice.reranker_is_stand_in
    assert "random weights" in choice.as_dict()["reranker"]
    assert "mean nothing" in choice.banner() and "RAG_MODELS=qwen3" in choice.banner()


def test_qwen3_kit_uses_configured_ids(base_settings):
    s = base_settings.with_overrides(models="qwen3")
    choice = choose_models(s)
    assert (choice.embedding_model, choice.reranker_model) == (s.embedding_model, s.reranker_model)
    assert choice.embedding_model == "Qwen/Qwen3-Embedding-0.6B"
    assert choice.reranker_model == "Qwen/Qwen3-Reranker-0.6B"
    assert not choice.reranker_is_stand_in


def test_auto_falls_back_offline_without_cache_or_hub(base_settings, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty hub cache
    choice = choose_models(base_settings.with_overrides(models="auto"))
    assert choice.kit == "offline"
    assert "HF_HUB_OFFLINE" in choice.reason


def test_auto_records_the_hubs_answer_on_the_choice(base_settings, monkeypatch, tmp_path):
    monkeypatch.setattr("helpers.models.is_cached", lambda model_id: False)
    monkeypatch.setattr("helpers.models.hub_reachable", lambda settings: False)
    assert choose_models(base_settings.with_overrides(models="auto")).hub is False
    assert choose_models(base_settings.with_overrides(models="offline")).hub is None  # not asked


def test_a_known_hub_answer_is_not_asked_again(base_settings, monkeypatch):
    monkeypatch.setattr("helpers.models.is_cached", lambda model_id: False)
    monkeypatch.setattr("helpers.models.hub_reachable", lambda *a, **k: pytest.fail("the hub was asked"))
    online = base_settings.with_overrides(hub_offline=False)
    with pytest.raises(ModelLoadError, match=r"embedding model .*hub is unreachable.*RAG_MODELS=offline"):
        check_downloadable("embedding", QWEN3_EMBEDDING_ID, online, hub=False)
    check_downloadable("embedding", QWEN3_EMBEDDING_ID, online, hub=True)
    # The offline kit's models never need the hub: a package ships one, the other is built here.
    assert not needs_download(MINILM_ID) and not needs_download(TINY_RERANKER_ID)
    check_downloadable("embedding", MINILM_ID, online)


def test_unknown_model_gives_actionable_error(base_settings):
    with pytest.raises(ModelLoadError, match=r"no-such-org/no-such-model.*HF_HUB_OFFLINE"):
        load_embedder("no-such-org/no-such-model", base_settings)


@pytest.mark.parametrize("kind", ["embedding", "reranker"])
def test_stand_ins_are_deterministic(tmp_path, kind):
    a = build_tiny_qwen3(kind, tmp_path / "a")
    b = build_tiny_qwen3(kind, tmp_path / "b")
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert all((wa[k] == wb[k]).all() for k in wa)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    # Built once: a second call reuses the folder.
    stamp = (a / "stand_in_recipe.json").stat().st_mtime_ns
    build_tiny_qwen3(kind, tmp_path / "a")
    assert (a / "stand_in_recipe.json").stat().st_mtime_ns == stamp


def test_stand_in_tokenizer_has_qwen_tokens(tiny_cross_encoder):
    tok = tiny_cross_encoder.tokenizer
    for token in ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "yes", "no"):
        assert tok.convert_tokens_to_ids(token) not in (None, tok.unk_token_id), token
        assert len(tok.encode(token, add_special_tokens=False)) == 1, token
    assert tok.padding_side == "left"


def test_stand_in_reranker_is_a_causal_lm(tiny_cross_encoder):
    assert type(tiny_cross_encoder.model).__name__ == "Qwen3ForCausalLM"


def test_stand_in_embedder_is_last_token_pooled_qwen3(tiny_embedder):
    st = tiny_embedder.model
    assert type(st[0].model).__name__ == "Qwen3Model"
    assert st[1].pooling_mode == "lasttoken" and st[1].get_config_dict()["pooling_mode"] == "lasttoken"
    assert st.tokenizer.padding_side == "left"
    # Like Qwen3-Embedding: <|endoftext|> is appended, and its hidden state becomes the embedding.
    ids = st.tokenizer("hello")["input_ids"]
    assert ids[-1] == st.tokenizer.convert_tokens_to_ids("<|endoftext|>")


# --- int8 dynamic quantisation (RAG_DTYPE=int8, CPU) ---------------------------------------------


@pytest.fixture(scope="module")
def int8_settings(base_settings):
    return base_settings.with_overrides(device="cpu", dtype="int8")


def test_int8_quantises_every_linear_but_the_lm_head(int8_settings):
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    model = load_reranker(TINY_RERANKER_ID, int8_settings).model
    plain = [n for n, m in model.named_modules() if type(m) is torch.nn.Linear]
    quantised = [n for n, m in model.named_modules() if isinstance(m, DynamicInt8Linear)]
    assert plain == ["lm_head"]
    assert len(quantised) == 7 * model.config.num_hidden_layers  # q, k, v, o, gate, up, down
    assert model.lm_head.weight.dtype == torch.float32


def test_int8_reranker_fast_path_equals_the_reference_on_the_same_model(int8_settings):
    from helpers.rerank import Reranker, reference_scores

    ce = load_reranker(TINY_RERANKER_ID, int8_settings)
    docs = ["Milvus keeps data in object storage.", "Use Docker on Windows.", "Partitions split data."]
    fast = Reranker(ce, TINY_RERANKER_ID).score("Where is data stored?", docs)
    ref = reference_scores(ce.model, ce.tokenizer, "Where is data stored?", docs)
    assert np.abs(fast - ref).max() < 1e-4


def test_int8_embedder_stays_close_to_fp32(base_settings, int8_settings):
    from helpers.embedding import Embedder

    texts = ["Milvus stores data in MinIO or S3.", "How do I install Milvus on Windows?", "nlist and nprobe"]
    cpu = base_settings.with_overrides(device="cpu")
    fp32 = Embedder(load_embedder(TINY_EMBEDDER_ID, cpu), TINY_EMBEDDER_ID)
    int8 = Embedder(load_embedder(TINY_EMBEDDER_ID, int8_settings), TINY_EMBEDDER_ID)
    a, b = fp32.encode_documents(texts), int8.encode_documents(texts)
    cosine = (a * b).sum(axis=1)
    assert (cosine > 0.95).all() and not np.allclose(a, b, atol=1e-6)  # close, but really quantised
