"""The class kit's packages: `make wheelhouse`, then `make install WHEELHOUSE=dir` with no index at all.

The test builds this platform's wheelhouse (every wheel of requirements.lock plus torch, pip and setuptools;
from pip's cache when it is warm, else from PyPI). In a fresh virtual environment, with pip's configuration
and every index switched off, it then resolves the whole lock from that folder alone (`--dry-run`: every
locked package and each of its dependencies must be there) and installs the project itself, whose build
needs setuptools from the folder. `import helpers` imports none of the dependencies, so that is all it needs;
the full install of the lock (minutes of unpacking) is the same resolution carried out, measured by hand in
the README. Other platforms' downloads are only listed (resolved by uv for that platform), never installed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.config import ROOT


def _run(cmd: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _no_index_env() -> dict[str, str]:
    """pip with no configuration file, no find-links and no index from the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("kit") / "wheelhouse"
    done = _run(["make", "wheelhouse", f"WHEEL_DIR={folder}"], dict(os.environ))
    if done.returncode != 0 and re.search(r"(?i)connection|resolve host|network is unreachable", done.stderr):
        pytest.skip(f"PyPI unreachable and pip's cache cold: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


def test_a_fresh_venv_resolves_the_whole_lock_and_installs_the_project_from_the_wheelhouse_alone(
    wheelhouse, tmp_path
):
    names = {p.name.split("-")[0].lower() for p in wheelhouse.glob("*.whl")}
    assert {"torch", "pip", "setuptools", "sentence_transformers", "pymilvus", "milvus_lite"} <= names
    assert not list(wheelhouse.glob("*.tar.gz")), "only wheels: nothing to build on the day"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py, env, source = (
        str(venv / "bin" / "python"),
        _no_index_env(),
        ["--no-index", "--find-links", str(wheelhouse)],
    )
    torch = next(p.name.split("-")[1] for p in wheelhouse.glob("torch-*.whl"))
    dry = ["--dry-run", "--ignore-installed", "--quiet", "--report", "-"]
    plan = _run(
        [py, "-m", "pip", "install", *source, *dry, f"torch=={torch}", "-r", "requirements.lock"], env
    )
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert '"name": "torch"' in plan.stdout and '"name": "sentence-transformers"' in plan.stdout
    install = _run([py, "-m", "pip", "install", "--quiet", *source, "--no-deps", "-e", "."], env)
    assert install.returncode == 0, install.stderr[-3000:]
    imported = _run([py, "-c", "import helpers; print(helpers.__file__)"], env)
    assert imported.returncode == 0 and imported.stdout.strip() == str(ROOT / "helpers" / "__init__.py")


@pytest.mark.parametrize("platform", ["macos-arm64", "windows-x86_64", "linux-x86_64"])
def test_other_platforms_downloads_are_listed_not_installed(platform, tmp_path):
    folder = tmp_path / "other"
    make = ["make", "wheelhouse", f"WHEEL_PLATFORM={platform}", "WHEEL_LIST=1", f"WHEEL_DIR={folder}"]
    done = _run(make, dict(os.environ), timeout=300)
    if done.returncode != 0 and re.search(r"(?i)connect|dns|resolve|network", done.stderr):
        pytest.skip(f"PyPI unreachable: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-3000:]
    listed = dict(line.split("==") for line in done.stdout.splitlines() if "==" in line and " " not in line)
    assert listed["torch"] == "2.13.0" and "sentence-transformers" in listed and "pymilvus" in listed
    cuda = any(name.startswith("nvidia-") for name in listed)
    assert cuda == (platform == "linux-x86_64")  # PyPI's Linux torch is the CUDA build; see TORCH_INDEX
    assert ("colorama" in listed) == (platform == "windows-x86_64")  # markers evaluated for the target
    assert not (folder / platform).exists(), "listed only: nothing downloaded"
