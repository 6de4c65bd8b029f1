"""Secrets: no key-like string in the repository or in notebook outputs, `.env` stays git-ignored,
keys come from the environment, `.env` or a hidden prompt, and never reach output, logs or errors."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from openai_stub import OpenAIStub

from helpers.chunking import Passage
from helpers.config import ROOT, Settings, ask_for_key, get_settings
from helpers.generate import LLMError, generate

# Patterns for real credentials. Test fakes are chosen so that they match none of them.
KEY_PATTERNS = {
    "OpenAI key": re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"),
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}"),
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
    "assigned API key or token": re.compile(
        r"(?i)(?:api[_-]?key|token|secret|password)[\"']?\s*[:=]\s*[\"'][A-Za-z0-9_\-]{24,}[\"']"
    ),
}
SECRET_VARIABLES = ("OPENAI_API_KEY", "MILVUS_TOKEN", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def _leaks(text: str) -> list[str]:
    return [f"{name}: {m.group(0)[:12]}…" for name, rx in KEY_PATTERNS.items() for m in rx.finditer(text)]


def _repository_files() -> list[Path]:
    """Files git tracks, plus untracked ones it does not ignore (what the next commit may add)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    return [ROOT / name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def _notebook_outputs(path: Path) -> str:
    """All text a notebook's cells produced: streams, results, errors and their tracebacks."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    parts = []
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            parts.append(json.dumps(output, ensure_ascii=False))
            parts += ["".join(t) if isinstance(t, list) else str(t) for t in output.get("data", {}).values()]
            parts += [str(output.get("text", "")), "\n".join(output.get("traceback", []))]
    return "\n".join(parts)


def _real_secrets() -> list[str]:
    """Secrets set on this machine (environment or `.env`), long enough to search for."""
    from dotenv import dotenv_values

    values = [os.environ.get(name, "") for name in SECRET_VARIABLES]
    env_file = ROOT / ".env"
    if env_file.is_file():
        values += [v or "" for k, v in dotenv_values(env_file).items() if k in SECRET_VARIABLES]
    return sorted({v.strip() for v in values if len(v.strip()) >= 8})


def test_patterns_catch_key_like_strings():
    """The scanner itself works (fakes are assembled at run time so this file matches nothing)."""
    samples = [
        "sk-" + "proj-" + "A1b2" * 6,
        "hf_" + "Ab1" * 11,
        "AKIA" + "ABCDEFGHIJKLMNOP",
        "ghp_" + "a1B2" * 9,
        "-----BEGIN " + "PRIVATE KEY-----",
        "api_key" + ' = "' + "a1B2c3" * 5 + '"',
        "MILVUS_TOKEN" + ": '" + "Zz9" * 10 + "'",
    ]
    for sample in samples:
        assert _leaks(sample), sample
    for harmless in ["sk-test-SECRET123", "task-specific", "token budget = 16384", "id 9f2c4e1a7b3d5e6f"]:
        assert not _leaks(harmless), harmless


def test_no_key_like_strings_in_the_repository():
    leaks = {}
    for path in _repository_files():
        raw = path.read_bytes()
        if b"\0" in raw[:8192]:
            continue  # binary
        found = _leaks(raw.decode("utf-8", errors="replace"))
        if found:
            leaks[str(path.relative_to(ROOT))] = found
    assert not leaks, leaks


def test_no_secrets_in_notebook_outputs():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    secrets = _real_secrets()
    for path in notebooks:
        outputs = _notebook_outputs(path)
        assert not _leaks(outputs), (path.name, _leaks(outputs))
        assert not any(s in outputs for s in secrets), f"{path.name} shows a secret set on this machine"


def test_dotenv_is_git_ignored():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT)
    assert done.returncode == 0, ".env must be listed in .gitignore"


def test_ask_for_key_prompts_hidden_and_writes_nothing(monkeypatch, capsys, tmp_path):
    fake = "fake-typed-key-0042"
    prompts = []
    monkeypatch.setattr("getpass.getpass", lambda prompt="": prompts.append(prompt) or f"  {fake}\n")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    key = ask_for_key()
    assert key == fake and "OPENAI_API_KEY" in prompts[0] and "hidden" in prompts[0]
    assert "OPENAI_API_KEY" not in os.environ, "the key goes into settings, not the process environment"
    s = get_settings(use_dotenv=False).with_overrides(openai_api_key=key)
    assert s.llm_configured and fake not in repr(s)
    out = capsys.readouterr()
    assert fake not in out.out + out.err
    assert list(tmp_path.iterdir()) == [], "nothing is written to disk"
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "")
    assert ask_for_key() == ""


def test_key_never_reaches_output_logs_or_errors(caplog, capfd):
    """Success and failure paths with every logger at DEBUG: the key appears nowhere."""
    key = "fake-key-for-tests-0042"
    caplog.set_level(logging.DEBUG)
    sources = [
        Passage(
            id="storage.md",
            text="Milvus persists segments in object storage.",
            title="Storage",
            source="storage.md",
        )
    ]
    with OpenAIStub() as stub:
        settings = Settings().with_overrides(
            openai_api_key=key, openai_base_url=stub.base_url, llm_max_retries=1, milvus_token=key
        )
        answer = generate("Where is data stored?", sources, settings)
        stub.require_key = "another-key"
        with pytest.raises(LLMError) as info:
            generate("Where is data stored?", sources, settings)
        stub.require_key = None
        stub.faults += [500, 500]
        with pytest.raises(LLMError) as info500:
            generate("Where is data stored?", sources, settings, stream=True)
        assert stub.requests[0]["headers"]["authorization"] == f"Bearer {key}", "the key was used"
    out = capfd.readouterr()
    texts = [answer.text, str(info.value), str(info500.value), repr(settings), caplog.text, out.out, out.err]
    assert any(r.name.startswith("openai") for r in caplog.records), "the client logged at DEBUG"
    assert not any(key in t for t in texts)
