"""A real browser for UI tests (test support): Debian's Chromium driven by Playwright, and JupyterLab.

Playwright's own browser builds come from a CDN this project cannot count on, so `chromium()` finds an
installed Chromium (`make browser` installs Debian's); `jupyter_lab` serves a folder on 127.0.0.1 with a
token, isolated from the user's Jupyter settings, and stops when the block ends.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from model_server import answering, free_port, running

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium() -> tuple[str | None, str]:
    """The Chromium executable (CHROMIUM, else the first of BROWSERS on PATH) and, when none, why."""
    if explicit := os.environ.get("CHROMIUM"):
        return (explicit, "") if Path(explicit).is_file() else (None, f"CHROMIUM={explicit} is not a file")
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found:
        return found, ""
    return (
        None,
        f"no Chromium on PATH ({', '.join(BROWSERS)}): run `make browser` or set CHROMIUM=/path/to/chromium",
    )


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab: its base URL and token."""

    url: str
    token: str

    def open(self, path: str) -> str:
        """The URL that opens `path` (relative to the served folder) in JupyterLab, token included."""
        return f"{self.url}/lab/tree/{path}?token={self.token}"


@contextmanager
def jupyter_lab(root: Path, env: dict[str, str], home: Path, timeout: float = 120.0) -> Iterator[Lab]:
    """JupyterLab serving `root` on 127.0.0.1 (free port, fresh token); its settings and state in `home`."""
    user_settings = {
        # No news or update notifications over the page: they could cover what the test clicks.
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        # Every cell in the page, not only those in view (JupyterLab renders a long notebook lazily).
        "notebook-extension/tracker": {"windowingMode": "none"},
    }
    for name, values in user_settings.items():
        path = home / "lab-settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {
        **env,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "IPYTHONDIR": str(home / "ipython"),
    }
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}"]
    cmd += [f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.news_url=None"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI and containers run as root; Jupyter refuses that otherwise
    url = f"http://127.0.0.1:{port}"
    with running("jupyter lab", cmd, env, answering(f"{url}/api/status?token={token}"), timeout, cwd=root):
        yield Lab(url, token)
