"""Local model and Milvus servers for the tests and benchmarks: start, wait until ready, stop (test support).

A child process logging to a file (a pipe could fill up and block it), a readiness probe with a deadline, and
a stop that never leaves the process behind. `infinity_server` runs Infinity, the model server the
remote-backend tests use, on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers.store import StoreError


class ServerError(RuntimeError):
    """A local server exited or did not become ready; the message holds the end of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(
    name: str,
    cmd: list[str],
    env: dict[str, str],
    ready: Callable[[], bool],
    timeout: float,
    cwd: Path | None = None,
) -> Iterator[None]:
    """Run `cmd` until the block exits; enter the block once `ready()` is true (or raise `ServerError`)."""
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
        try:
            deadline = time.monotonic() + timeout
            while not ready():
                if proc.poll() is not None:
                    log.seek(0)
                    raise ServerError(f"{name} exited with code {proc.returncode}: {log.read()[-800:]}")
                if time.monotonic() > deadline:
                    raise ServerError(f"{name} was not ready within {timeout:g} s.")
                time.sleep(0.2)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def listening(port: int) -> Callable[[], bool]:
    """A readiness probe: something accepts connections on 127.0.0.1:`port`."""

    def probe() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    return probe


def answering(url: str) -> Callable[[], bool]:
    """A readiness probe: GET `url` answers 200."""
    import urllib.request

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    return probe


@contextmanager
def infinity_server(
    executable: str | Path, models: dict[str, Path], home: Path, timeout: float = 180.0
) -> Iterator[str]:
    """Run Infinity (`infinity_emb v2`) on 127.0.0.1 serving `models` (served name -> local folder).

    Offline, without telemetry, on the CPU; yields the base URL (`http://127.0.0.1:PORT`) once
    `/health` answers. `home` holds its caches.
    """
    port = free_port()
    cmd = [str(executable), "v2", "--engine", "torch", "--device", "cpu", "--dtype", "float32"]
    for name, folder in models.items():
        cmd += ["--model-id", str(folder), "--served-model-name", name]
    cmd += ["--no-bettertransformer", "--no-compile", "--no-model-warmup", "--no-vector-disk-cache"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "DO_NOT_TRACK": "1",
        "INFINITY_ANONYMOUS_USAGE_STATS": "0",
        "INFINITY_HOME": str(home),
    }
    url = f"http://127.0.0.1:{port}"
    with running("infinity_emb", cmd, env, answering(f"{url}/health"), timeout, cwd=home):
        yield url


@contextmanager
def lite_server(data_dir: str | Path, timeout: float = 60.0) -> Iterator[str]:
    """Run `milvus-lite server` on 127.0.0.1 (never another interface) and yield its `http://` URI.

    The same gRPC protocol as Milvus Standalone, so everything that works against this URI works against
    a real server. The server is stopped when the block exits.
    """
    port = free_port()
    exe = shutil.which("milvus-lite", path=str(Path(sys.executable).parent)) or shutil.which("milvus-lite")
    if exe is None:
        raise StoreError("The `milvus-lite` command is missing: pip install 'pymilvus[milvus-lite]'.")
    cmd = [exe, "server", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "MILVUS_URI": ""}  # the server imports pymilvus, which rejects a file path there
    try:
        with running("milvus-lite server", cmd, env, listening(port), timeout):
            yield f"http://127.0.0.1:{port}"
    except ServerError as exc:
        raise StoreError(str(exc)) from None
