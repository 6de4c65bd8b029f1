"""The notebooks' entry point: a Milvus Lite file per notebook, the remembered archive, open kernels."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from notebook_runner import NOTEBOOKS_DIR, run_notebooks
from procs import child_env, read_line, stop

from helpers.chunking import ARCHIVE_NAME, find_archive
from helpers.setup import notebook_lite_file

FAQ_MD = "# FAQ\n\n#### Where does Milvus store data?\n\nIn object storage.\n"


def test_each_notebook_gets_its_own_lite_file_and_a_server_is_kept(base_settings, tmp_path):
    lite = base_settings.with_overrides(milvus_uri=str(tmp_path / "course.db"))
    assert notebook_lite_file(lite, "03").milvus_uri == str(tmp_path / "notebooks" / "03.db")
    assert notebook_lite_file(lite, "05").milvus_uri == str(tmp_path / "notebooks" / "05.db")
    server = base_settings.with_overrides(milvus_uri="http://127.0.0.1:19530")
    assert notebook_lite_file(server, "03").milvus_uri == "http://127.0.0.1:19530"


def test_an_archive_given_once_is_remembered(base_settings, tmp_path):
    given = tmp_path / "download" / ARCHIVE_NAME
    given.parent.mkdir()
    with zipfile.ZipFile(given, "w") as zf:
        zf.writestr("en/faq/a.md", FAQ_MD)
    cache = tmp_path / "cache"
    s = base_settings.with_overrides(
        docs_zip=str(given), cache_dir=str(cache), docs_url="http://127.0.0.1:9/x"
    )
    assert find_archive(s)[0] == given
    later = s.with_overrides(docs_zip="")  # the next run, without MILVUS_DOCS_ZIP
    path, why = find_archive(later, download=False)
    assert path == cache / ARCHIVE_NAME and why.startswith("cache")
    assert path.read_bytes() == given.read_bytes()
    assert not list(cache.glob("*.part")), "the copy is written atomically"


def test_notebooks_run_while_another_kernel_holds_its_own_lite_file(tmp_path, archive_zip):
    """A kernel of notebook 04 keeps its Milvus Lite file open; 05 (which indexes) runs meanwhile."""
    lite = tmp_path / "course.db"
    held = tmp_path / "notebooks" / "04.db"
    held.parent.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from helpers.store import connect; c = connect(sys.argv[1]); "
            "c.list_collections(); print('holding', flush=True); time.sleep(600)",
            str(held),
        ],
        env=child_env(MILVUS_URI=""),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert read_line(holder, timeout=60) == "holding"
        env = child_env(MILVUS_URI="", RAG_LITE_FILE=str(lite), MILVUS_DOCS_ZIP=str(archive_zip))
        failures = run_notebooks([NOTEBOOKS_DIR / "05_generation.ipynb"], env)
        assert not failures, "\n\n".join(str(f) for f in failures)
        assert holder.poll() is None, "the other kernel still holds its file"
        assert sorted(p.name for p in held.parent.glob("*.db")) == ["04.db", "05.db"]
    finally:
        stop(holder)
