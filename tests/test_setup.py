"""The set-up: the Python check before anything is made, the lock file, `make lab` (as root too).

Every `make` here runs with VENV pointing at a temporary folder or with the installed venv's stamp
taken as up to date (`-o`), so no test creates, changes or reinstalls the real `.venv`.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from helpers.config import VARIABLES

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
MAKE = shutil.which("make")
needs_make = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _make(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MAKE, "-C", str(ROOT), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _fake_python(folder: Path, reported: str = "3.10.12") -> Path:
    """A stand-in interpreter that reports an old version to whatever it is asked, and does nothing else."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "python"
    script.write_text(f"#!/bin/sh\necho {reported}\n")
    script.chmod(0o755)
    return script


def _real_old_python() -> str | None:
    """A real Python older than 3.11 on this machine (pyenv or the PATH), if there is one."""
    found = sorted(glob.glob("/root/.pyenv/versions/3.10*/bin/python3"))
    found += [p for p in (shutil.which("python3.10"), shutil.which("python3.9")) if p]
    return found[0] if found else None


def _error_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("error:")]


# --- Python 3.11 or newer, checked before anything is made --------------------------------------


@needs_make
@pytest.mark.parametrize("kind", ["stand-in", "real"])
def test_a_python_older_than_3_11_is_refused_before_anything_is_made(tmp_path, kind):
    python = str(_fake_python(tmp_path / "fake")) if kind == "stand-in" else _real_old_python()
    if python is None:
        pytest.skip("no Python older than 3.11 on this machine (the stand-in case covers the check)")
    venv = tmp_path / "venv"
    done = _make(f"PYTHON={python}", f"VENV={venv}", "install")
    assert done.returncode != 0
    errors = _error_lines(done)
    assert len(errors) == 1, done.stdout + done.stderr
    assert f"{python} is Python 3.10" in errors[0] and "needs 3.11 or newer" in errors[0]
    assert "PYTHON=python3.12 make demo" in errors[0]
    assert not venv.exists(), "the check must run before the venv is created or anything downloaded"


@needs_make
def test_a_venv_made_by_an_old_python_says_make_clean(tmp_path):
    venv = tmp_path / "venv"
    _fake_python(venv / "bin")
    done = _make(f"VENV={venv}", "PYTHON=python3", "test")
    assert done.returncode != 0
    errors = _error_lines(done)
    assert len(errors) == 1 and f"{venv} was made by Python 3.10.12" in errors[0]
    assert "make clean" in errors[0]
    assert sorted(p.name for p in venv.iterdir()) == ["bin"], "nothing was installed into it"


@needs_make
def test_a_python_3_11_or_newer_passes_the_check(tmp_path):
    done = _make(f"PYTHON={sys.executable}", f"VENV={tmp_path / 'venv'}", "check-python")
    assert done.returncode == 0 and not _error_lines(done), done.stderr
    assert not (tmp_path / "venv").exists()


@needs_make
def test_pyproject_and_the_makefile_accept_the_same_pythons(tmp_path):
    """The Makefile's check accepts exactly the versions pyproject's requires-python admits."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    admitted = SpecifierSet(project["project"]["requires-python"])
    for reported in ("3.10.12", "3.11.0", "3.12.4", "3.13.1"):
        python = _fake_python(tmp_path / reported, reported)
        done = _make(f"PYTHON={python}", f"VENV={tmp_path / 'venv'}", "check-python")
        assert (done.returncode == 0) == (reported in admitted), (reported, done.stderr)
    assert project["tool"]["ruff"]["target-version"] == "py311" and "3.10.12" not in admitted


# --- the README ----------------------------------------------------------------------------------


def test_the_readme_documents_every_setting():
    """Every variable the settings read (`helpers.config.VARIABLES`) has a row in the README's table."""
    names = set(VARIABLES)
    assert {"MILVUS_URI", "RAG_LITE_FILE", "RAG_MODELS", "RAG_EMBEDDING_URL", "HF_HUB_OFFLINE"} <= names
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `")]
    missing = sorted(n for n in names if not any(f"`{n}`" in row.split("|")[1] for row in rows))
    assert not missing, f"not in the README's configuration table: {missing}"


# --- the lock file -------------------------------------------------------------------------------


def _lock_pins() -> dict[str, list[tuple[str, str | None]]]:
    """Package name -> [(pinned version, environment marker or None)] from requirements.lock."""
    pins: dict[str, list[tuple[str, str | None]]] = {}
    for line in LOCK.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)\s*(?:;\s*(.+))?$", line.strip())
        if m:
            pins.setdefault(canonicalize_name(m.group(1)), []).append((m.group(2), m.group(3)))
    return pins


def _requirements() -> list[Requirement]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [Requirement(line.split("#")[0].strip()) for line in lines if line.split("#")[0].strip()]


def test_the_lock_leaves_torch_and_its_cuda_wheels_out():
    names = _lock_pins()
    assert len(names) > 100
    cuda = [n for n in names if n in ("torch", "triton") or n.startswith(("nvidia-", "cuda-"))]
    assert not cuda, f"TORCH_SPEC installs torch; the lock must not pull {cuda}"


def test_the_lock_pins_every_requirement_within_its_minimum():
    pins = _lock_pins()
    for req in _requirements():
        name = canonicalize_name(req.name)
        if name == "torch":
            continue
        assert name in pins, f"{req.name} is in requirements.txt but not in requirements.lock: run make lock"
        for pinned, _ in pins[name]:
            assert req.specifier.contains(pinned, prereleases=True), f"{req.name}=={pinned} breaks {req}"


def test_this_environment_runs_the_locked_versions():
    """The tests run against exactly the lock (what `make install` installs)."""
    wrong = []
    for name, entries in _lock_pins().items():
        for pinned, marker in entries:
            if marker and not Marker(marker).evaluate():
                continue
            try:
                installed = version(name)
            except PackageNotFoundError:
                installed = None
            if installed != pinned:
                wrong.append(f"{name}: locked {pinned}, installed {installed}")
    hint = "run `make install` (or `make lock` after changing requirements.txt)"
    assert not wrong, f"{hint}: {'; '.join(wrong)}"


@needs_make
def test_make_install_puts_torch_first_then_the_lock(tmp_path):
    done = _make("-n", f"PYTHON={sys.executable}", f"VENV={tmp_path / 'venv'}", "install")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    torch = next(i for i, line in enumerate(lines) if "torch==2.13.0" in line)
    lock = next(i for i, line in enumerate(lines) if "-r requirements.lock" in line)
    assert torch < lock
    assert not (tmp_path / "venv").exists()


# --- make lab --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@needs_make
def test_make_lab_starts_on_loopback_as_root_too_and_stops(tmp_path):
    """Jupyter refuses to start as root without --allow-root; `make lab` adds it when `id -u` is 0."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "jupyter").exists():
        pytest.skip("JupyterLab is not installed in this environment")
    port = _free_port()
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
    }
    log = (tmp_path / "lab.log").open("w")
    lab_args = f"LAB_ARGS=--no-browser --port={port} --ServerApp.port_retries=0"
    proc = subprocess.Popen(
        [MAKE, "-C", str(ROOT), "-o", str(venv / ".installed"), f"VENV={venv}", "lab", lab_args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # make, its shell and jupyter in one process group, stopped together
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 60
        while not _answers(url):
            assert proc.poll() is None, (tmp_path / "lab.log").read_text()
            assert time.monotonic() < deadline, "JupyterLab did not answer within 60 s"
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
    # As root (uid 0, as in CI and most containers), Jupyter exits at once with "Running as root is not
    # recommended. Use --allow-root to bypass." unless make added it: answering above proves it did.
    assert f"http://127.0.0.1:{port}/lab" in (tmp_path / "lab.log").read_text()
    assert not _answers(url), "JupyterLab is still running after it was stopped"
