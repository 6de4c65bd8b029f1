"""Notebook 07 in a real browser: JupyterLab runs every cell, a learner types a question and presses Enter.

Headless Chromium (Debian's package, `make browser`) driven by Playwright. The notebook runs from a copy in a
temporary folder, so JupyterLab's autosave never touches the committed file. The screenshot is saved under
data/cache/screenshots/ for a person to look at.
"""

from __future__ import annotations

import shutil

import pytest
from browser import chromium, jupyter_lab
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright
from procs import child_env

from helpers.chunking import find_archive
from helpers.config import DATA_DIR, ROOT

QUESTION = "How is data stored in milvus?"
# The passage that answers it: the FAQ's own heading, or the sample corpus's where the archive is missing.
EXPECTED = {
    "milvus-faq": "Where does Milvus store data?",
    "sample": "What is Milvus used for in this course?",
}
SCREENSHOT = DATA_DIR / "cache" / "screenshots" / "explorer.png"
RUN_ALL_TIMEOUT_MS = 300_000  # every cell on a busy 2-core machine: index, searches, the disagreement table


@pytest.fixture(scope="module")
def browser_path() -> str:
    path, why = chromium()
    if path is None:
        pytest.skip(why)
    return path


def run_all(page, tries: int = 3) -> None:
    """Run > Run All Cells, again if no cell started within 20 s (a click while the session settles)."""
    for _ in range(tries):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.get_by_text("Run All Cells", exact=True).click()
        started = page.locator(".jp-InputPrompt", has_text="[*]")  # a cell running (or queued)
        try:
            started.first.wait_for(state="attached", timeout=20_000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"no cell started after {tries} clicks on Run All Cells")


def test_a_learner_asks_in_the_explorer(browser_path, base_settings, tmp_path):
    corpus = "milvus-faq" if find_archive(base_settings, download=False)[0] else "sample"
    work = tmp_path / "notebooks"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / "07_explore.ipynb", work)
    env = child_env(RAG_LITE_FILE=str(tmp_path / "lite" / "rag.db"), MILVUS_URI="")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    with jupyter_lab(work, env, tmp_path / "jupyter") as lab, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path)
        page = None
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1700})
            page.goto(lab.open("07_explore.ipynb"))
            page.locator(".jp-Notebook").wait_for(timeout=60_000)
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)  # the kernel is up
            run_all(page)
            box = page.get_by_placeholder("Type a question, press Enter")
            box.wait_for(state="attached", timeout=RUN_ALL_TIMEOUT_MS)
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
                timeout=RUN_ALL_TIMEOUT_MS
            )
            box.scroll_into_view_if_needed()
            box.fill(QUESTION)
            box.press("Enter")
            table = page.locator(".widget-html-content .rag-explore")
            table.wait_for(timeout=60_000)
            header = table.locator("thead th").all_inner_texts()
            assert header == ["rank", "dense", "bm25", "hybrid"], header  # reranked: off on the offline kit
            dense_top3 = [
                table.locator("tbody tr").nth(n).locator("td").nth(1).inner_text() for n in range(3)
            ]
            assert any(EXPECTED[corpus] in cell for cell in dense_top3), dense_top3
            assert "not a labelled question" in page.locator(".widget-html-content").last.inner_text()
            widget = page.locator(".jp-OutputArea-output", has=page.locator(".widget-tab")).first
            widget.scroll_into_view_if_needed()
            widget.screenshot(path=str(SCREENSHOT))
        except Exception:
            if page is not None:  # what the page showed, for the person reading the failure
                page.screenshot(path=str(SCREENSHOT.with_name("explorer-failure.png")), full_page=True)
            raise
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
