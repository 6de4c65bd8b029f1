"""Model choice (auto, qwen3, offline), loading, and the deterministic tiny Qwen3 stand-ins."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.numpy import load_file

from helpers.cli import banner
from helpers.config import QWEN3_EMBEDDING_ID
from helpers.embedding import load_embedder
from helpers.offline.hub import ModelLoadError, check_downloadable, needs_download
from helpers.offline.standins import MINILM_ID, TINY_RERANKER_ID, model_path
from helpers.setup import choose_models


def test_offline_kit(base_settings):
    choice = choose_models(base_settings.with_overrides(models="offline"))
    assert (choice.kit, choice.embedding_model, choice.reranker_model) == (
        "offline",
        MINILM_ID,
        TINY_RERANKER_ID,
    )
    assert choice.reranker_is_stand_in
    assert "random weights" in choice.as_dict()["reranker"]
    assert "mean nothing" in banner(choice) and "RAG_MODELS=qwen3" in banner(choice)


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
    monkeypatch.setattr("helpers.offline.hub.is_cached", lambda model_id, revision=None: False)
    monkeypatch.setattr("helpers.offline.hub.reachable", lambda settings: False)
    assert choose_models(base_settings.with_overrides(models="auto")).hub is False
    assert choose_models(base_settings.with_overrides(models="offline")).hub is None  # not asked


def test_a_known_hub_answer_is_not_asked_again(base_settings, monkeypatch):
    monkeypatch.setattr("helpers.offline.hub.is_cached", lambda model_id, revision=None: False)
    monkeypatch.setattr("helpers.offline.hub.reachable", lambda *a, **k: pytest.fail("the hub was asked"))
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


@pytest.mark.parametrize("model_id", ["stand-in/tiny-qwen3-embedding", TINY_RERANKER_ID])
def test_stand_ins_are_deterministic(tmp_path, model_id):
    a, b = Path(model_path(model_id, tmp_path / "a")), Path(model_path(model_id, tmp_path / "b"))
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert all((wa[k] == wb[k]).all() for k in wa)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    # Built once: a second call reuses the folder.
    stamp = (a / "stand_in_recipe.json").stat().st_mtime_ns
    model_path(model_id, tmp_path / "a")
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
