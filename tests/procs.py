"""Helpers for tests that run the project in child processes: a clean environment, bounded waits."""

from __future__ import annotations

import ipaddress
import os
import queue
import subprocess
import threading

from helpers.config import ROOT

LLM_VARIABLES = ("OPENAI_API_KEY", "OPENAI_BASE_URL")


def child_env(**extra: str) -> dict[str, str]:
    """The test environment for a child process: offline kit, no LLM endpoint, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in LLM_VARIABLES}
    env.update(RAG_MODELS="offline", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def read_line(proc: subprocess.Popen, timeout: float) -> str | None:
    """The next line the child prints on stdout, or None when it prints nothing within `timeout` s."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout).strip()
    except queue.Empty:
        return None


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (::ffff:127.0.0.1)."""
    ip = ipaddress.ip_address(host.split("%")[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def stop(proc: subprocess.Popen) -> None:
    """Kill a child process this test started (if still running) and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
