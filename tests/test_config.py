"""Settings: defaults, environment and .env overrides, validation, secrets kept out of repr."""

from __future__ import annotations

import os

import pytest

from helpers.config import ConfigError, Settings, get_settings, load_dotenv_file, resolve_dtype


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("RAG_MODELS", "qwen3")
    monkeypatch.setenv("MILVUS_URI", "http://127.0.0.1:19530")
    monkeypatch.setenv("LLM_MODEL", "llama3.2")
    s = get_settings(use_dotenv=False)
    assert (s.models, s.milvus_uri, s.llm_model) == ("qwen3", "http://127.0.0.1:19530", "llama3.2")
    assert not s.is_lite


def test_default_uri_is_a_lite_file(monkeypatch):
    monkeypatch.delenv("MILVUS_URI", raising=False)
    s = get_settings(use_dotenv=False)
    assert s.is_lite and s.milvus_uri.endswith(".db")


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("RAG_MODELS", "gpu", "RAG_MODELS"),
        ("RAG_DEVICE", "tpu", "RAG_DEVICE"),
        ("LLM_MAX_RETRIES", "x", "LLM_MAX_RETRIES"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, var, value, needle):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=needle):
        get_settings(use_dotenv=False)


def test_dotenv_fills_but_never_overrides(tmp_path, monkeypatch):
    env = tmp_path / ".env"
    env.write_text("LLM_MODEL=from-dotenv\nOPENAI_BASE_URL=http://127.0.0.1:1/v1\n")
    monkeypatch.setenv("LLM_MODEL", "from-environment")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert load_dotenv_file(env)
    assert os.environ["LLM_MODEL"] == "from-environment"
    assert os.environ["OPENAI_BASE_URL"] == "http://127.0.0.1:1/v1"


def test_missing_dotenv_is_fine(tmp_path):
    assert load_dotenv_file(tmp_path / "nope.env") is False


def test_secrets_not_in_repr():
    s = Settings(openai_api_key="sk-very-secret", milvus_token="tok-secret")
    assert "sk-very-secret" not in repr(s) and "tok-secret" not in repr(s)
    assert s.llm_configured


def test_with_overrides_rejects_unknown_names():
    with pytest.raises(ConfigError, match="Unknown setting"):
        Settings().with_overrides(nonsense=1)


def test_dtype_policy():
    assert resolve_dtype("cuda") == "bfloat16"
    assert resolve_dtype("cpu") == resolve_dtype("mps") == "float32"
    assert resolve_dtype("cuda", "float32") == "float32"
    assert resolve_dtype("cpu", "int8") == "int8"


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
def test_int8_off_the_cpu_is_refused_with_the_fix(device):
    with pytest.raises(ConfigError, match=r"CPU only.*RAG_DEVICE=cpu"):
        resolve_dtype(device, "int8")


def test_int8_is_a_known_dtype_and_typos_list_the_choices(monkeypatch):
    monkeypatch.setenv("RAG_DTYPE", "INT8")
    assert get_settings(use_dotenv=False).dtype == "int8"
    monkeypatch.setenv("RAG_DTYPE", "int4")
    with pytest.raises(ConfigError, match=r"RAG_DTYPE='int4'.*int8"):
        get_settings(use_dotenv=False)
