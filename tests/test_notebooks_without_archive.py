"""Without the Milvus docs archive every notebook still runs top to bottom, on the sample corpus.

A learner who is offline and has no MILVUS_DOCS_ZIP gets the project's sample corpus (data/sample_faq)
and its labelled questions; the committed outputs come from the FAQ, so only "no cell fails" is checked.
"""

from __future__ import annotations

from notebook_runner import course_notebooks, run_notebooks
from procs import child_env


def test_every_notebook_runs_without_the_archive(tmp_path):
    env = child_env(
        MILVUS_DOCS_ZIP="",
        MILVUS_DOCS_URL="http://127.0.0.1:9/milvus_docs_2.4.x_en.zip",  # refused at once, never the internet
        RAG_CACHE_DIR=str(tmp_path / "cache"),  # no cached archive either
        MILVUS_URI="",
        RAG_LITE_FILE=str(tmp_path / "lite.db"),
        OPENAI_API_KEY="",
        OPENAI_BASE_URL="",
    )
    failures = run_notebooks(course_notebooks(), env)
    assert not failures, "\n\n".join(str(f) for f in failures)
