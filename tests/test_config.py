"""Settings: defaults, environment and .env overrides, validation, secrets kept out of repr."""

from __future__ import annotations

import os

import pytest

from helpers.config import ConfigError, Settings, get_settings, read_dotenv, resolve_dtype


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("RAG_MODELS", "qwen3")
    monkeypatch.setenv("MILVUS_URI", "http://127.0.0.1:19530")
    monkeypatch.setenv("LLM_MODEL", "llama3.2")
    s = get_settings(use_dotenv=False)
    assert (s.models, s.milvus_uri, s.llm_model) == ("qwen3", "http://127.0.0.1:19530", "llama3.2")
    assert not s.is_lite


def test_default_uri_is_a_lite_file(monkeypatch):
    monkeypatch.delenv("MILVUS_URI", raising=False)
    monkeypatch.delenv("RAG_LITE_FILE", raising=False)
    s = get_settings(use_dotenv=False)
    assert s.is_lite and s.milvus_uri.endswith("milvus_rag.db")


def test_lite_file_has_its_own_variable_and_a_server_uri_wins(monkeypatch, tmp_path):
    monkeypatch.delenv("MILVUS_URI", raising=False)
    monkeypatch.setenv("RAG_LITE_FILE", str(tmp_path / "mine.db"))
    assert get_settings(use_dotenv=False).milvus_uri == str(tmp_path / "mine.db")
    monkeypatch.setenv("MILVUS_URI", "https://in03-example.zillizcloud.com")
    assert get_settings(use_dotenv=False).milvus_uri == "https://in03-example.zillizcloud.com"


def test_file_path_in_milvus_uri_still_works_with_a_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("MILVUS_URI", str(tmp_path / "old.db"))
    with pytest.warns(UserWarning, match=r"Rename it to RAG_LITE_FILE"):
        s = get_settings(use_dotenv=False)
    assert s.is_lite and s.milvus_uri == str(tmp_path / "old.db")


def test_documented_settings_let_pymilvus_and_milvus_lite_server_start(tmp_path):
    """With the README's settings exported, a plain `import pymilvus` and `milvus-lite server` work."""
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    env = {**os.environ, "RAG_LITE_FILE": str(tmp_path / "course.db"), "MILVUS_TOKEN": ""}
    env.pop("MILVUS_URI", None)
    done = subprocess.run([sys.executable, "-c", "import pymilvus"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).parent / "milvus-lite"
    data_dir = str(tmp_path / "srv")
    cmd = [str(exe), "server", "--data-dir", data_dir, "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"milvus-lite server exited: {proc.stderr.read()[-500:]}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "milvus-lite server did not listen within 60 s"
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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


def test_dotenv_fills_but_never_overrides_and_changes_no_environment(tmp_path, monkeypatch):
    env = tmp_path / ".env"
    env.write_text("LLM_MODEL=from-dotenv\nOPENAI_BASE_URL=http://127.0.0.1:1/v1\nHF_HUB_OFFLINE=1\n")
    monkeypatch.setenv("LLM_MODEL", "from-environment")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    before = dict(os.environ)
    s = get_settings(dotenv_path=env)
    assert s.llm_model == "from-environment"
    assert s.openai_base_url == "http://127.0.0.1:1/v1" and s.hub_offline
    assert dict(os.environ) == before, "reading settings must not write .env values into os.environ"


def test_one_malformed_dotenv_line_is_named_in_one_warning(tmp_path):
    env = tmp_path / ".env"
    env.write_text("LLM_MODEL=m\nTHIS IS NOT VALID\n")
    with pytest.warns(UserWarning) as warned:
        assert read_dotenv(env) == {"LLM_MODEL": "m"}
    assert [str(w.message) for w in warned] == [
        f"{env}: line 2 could not be parsed and was ignored; write each setting as NAME=value, with any "
        "quote closed on the same line."
    ]


def test_missing_dotenv_is_fine(tmp_path):
    assert read_dotenv(tmp_path / "nope.env") == {}


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


def test_dtype_typos_list_the_choices(monkeypatch):
    monkeypatch.setenv("RAG_DTYPE", "BFloat16")
    assert get_settings(use_dotenv=False).dtype == "bfloat16"
    monkeypatch.setenv("RAG_DTYPE", "int4")
    with pytest.raises(ConfigError, match=r"RAG_DTYPE='int4'.*float32, bfloat16, float16"):
        get_settings(use_dotenv=False)


def test_every_listed_variable_is_read(monkeypatch):
    """`VARIABLES` (what the README's table must document) is exactly what `get_settings` reads."""
    from dataclasses import fields

    from helpers.config import VARIABLES

    samples = {bool: "1", int: "7", float: "7.5"}
    for f in fields(Settings):
        name = f.metadata["env"]
        raw = (
            f.metadata["choices"][-1] if f.metadata["choices"] else samples.get(type(f.default), "http://x:1")
        )
        if f.default is True:  # a switch that is on by default (RAG_EMBED_CACHE): turn it off
            raw = "0"
        if name == "RAG_DEVICE":
            raw = "cpu"
        monkeypatch.setenv(name, raw)
        assert getattr(get_settings(use_dotenv=False), f.name) != f.default, name
        monkeypatch.delenv(name)
    monkeypatch.setenv("MILVUS_URI", "http://127.0.0.1:19530")
    assert get_settings(use_dotenv=False).milvus_uri == "http://127.0.0.1:19530"
    assert set(VARIABLES) == {"MILVUS_URI", *(f.metadata["env"] for f in fields(Settings))}
