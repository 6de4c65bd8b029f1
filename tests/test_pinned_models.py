"""The Qwen3 models pinned by hub commit, loaded at that commit, and found offline in a copied hub cache.

The download itself needs the hub (`make models DEST=dir` calls `huggingface_hub.snapshot_download`); here the
hub-layout replicas of tests/qwen3_replicas.py stand in for it, placed in the cache where that call puts them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from procs import child_env
from qwen3_replicas import REPOS, build_replica

from helpers.config import QWEN3_EMBEDDING_ID, QWEN3_RERANKER_ID, QWEN3_REVISIONS, ROOT, get_settings
from helpers.offline import hub
from helpers.offline.standins import MINILM_ID
from helpers.setup import load_model

# What a learner's laptop runs: `auto` resolves, then both models load through the course's code and run once.
PROBE = """
import json
from helpers.config import get_settings
from helpers.embedding import load_embedder
from helpers.rerank import load_reranker
from helpers.setup import choose_models

settings = get_settings()
choice = choose_models(settings)
out = {"kit": choice.kit, "reason": choice.reason}
if choice.kit == "qwen3":
    embedder = load_embedder(choice.embedding_model, settings)
    reranker = load_reranker(choice.reranker_model, settings)
    out["dim"] = embedder.encode_document(["Milvus stores data in segments."]).shape[-1]
    out["scores"] = len(reranker.predict([("Where is data stored?", "In segments.")]))
print(json.dumps(out))
"""


def test_each_qwen3_model_is_pinned_to_a_full_commit_in_one_place(monkeypatch):
    assert set(QWEN3_REVISIONS) == {QWEN3_EMBEDDING_ID, QWEN3_RERANKER_ID}
    assert all(re.fullmatch(r"[0-9a-f]{40}", rev) for rev in QWEN3_REVISIONS.values())
    settings = get_settings(use_dotenv=False)
    for model_id, rev in QWEN3_REVISIONS.items():
        assert settings.revision(model_id) == rev
    assert settings.revision(MINILM_ID) is None and settings.revision("some/other-model") is None
    monkeypatch.setenv("RAG_EMBEDDING_REVISION", "main")
    monkeypatch.setenv("RAG_RERANKER_MODEL", "me/my-reranker")
    monkeypatch.setenv("RAG_RERANKER_REVISION", "v2")
    overridden = get_settings(use_dotenv=False)
    assert overridden.revision(QWEN3_EMBEDDING_ID) == "main"
    assert overridden.revision("me/my-reranker") == "v2"


def test_load_model_passes_the_pinned_revision_to_the_library(base_settings, monkeypatch):
    calls = []
    monkeypatch.setattr(hub, "is_cached", lambda model_id, revision=None: True)
    loader = lambda path, **kwargs: calls.append((path, kwargs.get("revision")))  # noqa: E731
    load_model("embedding", QWEN3_EMBEDDING_ID, base_settings, loader, hub_ok=False)
    load_model("reranker", QWEN3_RERANKER_ID, base_settings, loader, hub_ok=False)
    load_model("embedding", MINILM_ID, base_settings, loader, hub_ok=False)  # a local folder: no revision
    assert calls[0] == (QWEN3_EMBEDDING_ID, QWEN3_REVISIONS[QWEN3_EMBEDDING_ID])
    assert calls[1] == (QWEN3_RERANKER_ID, QWEN3_REVISIONS[QWEN3_RERANKER_ID])
    assert calls[2][1] is None and Path(calls[2][0]).is_dir()


def test_make_models_downloads_each_model_at_its_pin_into_a_hub_cache(base_settings, monkeypatch, tmp_path):
    import huggingface_hub

    calls = []

    def snapshot_download(repo_id, revision=None, cache_dir=None):
        calls.append((repo_id, revision, Path(cache_dir)))
        return str(Path(cache_dir) / repo_id)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    hub.download(str(tmp_path), base_settings)
    pair = (QWEN3_EMBEDDING_ID, QWEN3_RERANKER_ID)
    assert calls == [(m, QWEN3_REVISIONS[m], tmp_path / "hub") for m in pair]


def test_make_models_without_the_hub_fails_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "helpers.offline.hub", str(tmp_path / "stick")],
        env=child_env(HF_HUB_OFFLINE="1"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: could not download the models (") and done.stderr.count("\n") == 1


def _hub_cache(root: Path, replicas: dict[str, Path], revisions: dict[str, str]) -> Path:
    """The replicas where `snapshot_download(repo, revision=commit, cache_dir=root/hub)` puts a repository."""
    for kind, repo in REPOS.items():
        snapshot = root / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / revisions[repo]
        shutil.copytree(replicas[kind], snapshot)
    return root


@pytest.fixture(scope="module")
def replicas(base_settings) -> dict[str, Path]:
    return {kind: build_replica(kind, base_settings.cache_dir) for kind in REPOS}


def _probe(home: Path, tmp_path: Path) -> dict:
    models = {"RAG_EMBEDDING_MODEL": "", "RAG_RERANKER_MODEL": ""}  # the default ids, whatever was set
    env = child_env(HF_HOME=str(home), HF_HUB_OFFLINE="1", RAG_MODELS="auto", **models)
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_copied_hub_cache_makes_auto_choose_qwen3_offline(replicas, tmp_path):
    stick = _hub_cache(tmp_path / "usb-stick", replicas, QWEN3_REVISIONS)
    laptop = tmp_path / "laptop" / "qwen3-models"
    shutil.copytree(stick, laptop)  # what a learner does with the stick: copy it, then point HF_HOME at it
    out = _probe(laptop, tmp_path)
    assert out["kit"] == "qwen3" and out["reason"].startswith("auto: Qwen3 weights found in the hub cache")
    assert str(laptop / "hub") in out["reason"]
    assert all(rev[:8] in out["reason"] for rev in QWEN3_REVISIONS.values())
    assert (out["dim"], out["scores"]) == (1024, 1)


def test_a_cache_of_another_revision_is_not_taken_for_the_pinned_one(replicas, tmp_path):
    other = {repo: "0" * 40 for repo in QWEN3_REVISIONS}
    out = _probe(_hub_cache(tmp_path / "old-stick", replicas, other), tmp_path)
    assert out["kit"] == "offline" and "HF_HUB_OFFLINE" in out["reason"]
