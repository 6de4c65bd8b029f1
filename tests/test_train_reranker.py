"""Issue 31's reranker experiment (benchmarks/train_reranker.py): its training data never touches the test.

The FAQ pages and the 78 labelled questions are the test; the training pairs come from the other pages of the
docs, deterministically. Checked on a small archive written here, and on the real one when it is available.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from benchmarks.train_reranker import (
    RECIPE,
    Example,
    check_held_out,
    hand_metrics,
    held_out_strings,
    sections,
    training_examples,
)
from helpers.chunking import FAQ_PREFIX
from helpers.evaluate import Question, load_questions
from helpers.setup import QUESTIONS

QUESTION = Question(query="Where do my vectors live?", relevant=("Where does Milvus store data?",), line=1)
BODY = "Milvus keeps inserted vectors in object storage such as MinIO or S3, and metadata in etcd. " * 2
PAGES = {
    "en/faq/operational_faq.md": f"# FAQ\n\n## Where does Milvus store data?\n\n{BODY}\n",
    "en/userGuide/storage.md": (
        "# Storage\n\n## Configure object storage\n\nSet minio.address and minio.port in milvus.yaml so that "
        "every node writes its segments to the same bucket.\n\n"
        # a page outside en/faq/ that repeats a labelled heading: held out too
        f"## Where does Milvus store data?\n\n{BODY}\n\n"
        "## Prerequisites\n\nA running Kubernetes cluster with at least three nodes and a default storage "
        "class.\n"
    ),
    "en/adminGuide/etcd.md": (
        "# etcd\n\n## Configure etcd endpoints\n\nList the etcd endpoints that Milvus connects to for its "
        "metadata, comma-separated, in etcd.endpoints.\n\n## Prerequisites\n\nA running Kubernetes cluster "
        "with a storage class for the etcd volumes, and Helm 3.\n"
    ),
    "en/getstarted/install.md": (
        "# Install\n\n## Install Milvus with Docker Compose\n\nDownload the docker-compose.yml file and run "
        "docker compose up -d to start etcd, MinIO and Milvus together.\n"
    ),
}
TINY = RECIPE | {"queries": 10, "negatives": 2}


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """A docs archive in the real one's layout: an FAQ page and three other pages."""
    path = tmp_path_factory.mktemp("docs") / "docs.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in PAGES.items():
            zf.writestr(name, text)
    return path


def test_training_data_leaves_out_the_faq_and_the_labelled_questions(archive, minilm):
    """Every query is a heading from outside en/faq/; the section holding a labelled heading is left out."""
    examples = training_examples(archive, [QUESTION], minilm, TINY)
    assert {e.query for e in examples} == {
        "Configure object storage",
        "Configure etcd endpoints",
        "Install Milvus with Docker Compose",
    }  # "Prerequisites" is on two pages: it names no one section
    for e in examples:
        assert not e.source.startswith(FAQ_PREFIX)
        assert all("Where does Milvus store data?" not in t for t in (e.query, e.positive, *e.negatives))
        assert e.negatives and all(n != e.positive for n in e.negatives)


def test_negatives_come_from_other_pages(archive, minilm):
    """A hard negative is never a section of the query's own page."""
    passages = sections(archive, [QUESTION])
    page_of = {p.text.partition("\n")[2].strip(): p.source for p in passages}
    for e in training_examples(archive, [QUESTION], minilm, TINY):
        assert all(page_of[n] != e.source for n in e.negatives)


def test_training_data_is_deterministic(archive, minilm):
    """The same archive, questions and recipe give the same examples, in the same order."""
    assert training_examples(archive, [QUESTION], minilm, TINY) == training_examples(
        archive, [QUESTION], minilm, TINY
    )


def test_check_held_out_refuses_an_overlap():
    """An example from en/faq/, or one quoting a labelled question, stops the run with the example named."""
    clean = Example("Configure etcd", "text", ("other",), "en/adminGuide/etcd.md")
    check_held_out([clean], [QUESTION])
    with pytest.raises(ValueError, match=r"comes from en/faq/x\.md, an FAQ page"):
        check_held_out([clean._replace(source="en/faq/x.md")], [QUESTION])
    with pytest.raises(ValueError, match=r"quotes a test string: 'Where do my vectors live\?'"):
        check_held_out([clean._replace(negatives=(f"see {QUESTION.query}",))], [QUESTION])


def test_real_archive_sections_hold_out_the_test(archive_zip):
    """On the real docs: no en/faq/ page, no labelled question or relevant heading in any training section."""
    questions = load_questions(QUESTIONS["milvus-faq"])
    banned = held_out_strings(questions)
    assert len(banned) > len(questions)  # the questions and their relevant headings
    kept = sections(archive_zip, questions)
    assert kept and not any(p.source.startswith(FAQ_PREFIX) for p in kept)
    assert not any(b in p.text for b in banned for p in kept)
    everything = sections(archive_zip, [])
    assert len(everything) > len(kept)  # some non-FAQ sections quote a relevant heading: they were removed


@pytest.mark.parametrize(
    ("ranked", "relevant", "expected"),
    [
        (["a", "b", "c"], {"a": 1}, (1.0, 1.0)),
        (["a", "b", "c", "d"], {"d": 1}, (0.25, 0.0)),
        (["a", "b", "c"], {"b": 1, "z": 1}, (0.5, 0.5)),
        ([str(i) for i in range(12)], {"10": 1}, (0.0, 0.0)),  # rank 11: outside MRR@10
    ],
)
def test_hand_metrics(ranked, relevant, expected):
    """MRR@10 and recall@3 by hand, on rankings whose values are known."""
    assert np.allclose(hand_metrics(ranked, relevant), expected)


def test_smoke_run(base_settings, tmp_path):
    """`python -m benchmarks train_reranker --smoke`: a few steps, a few questions measured, nothing saved."""
    from benchmarks.common import RESULTS
    from benchmarks.train_reranker import SMOKE, run

    before = sorted(p.name for p in RESULTS.iterdir())
    result = run(base_settings.with_overrides(milvus_uri=str(tmp_path / "eval.db")), "cpu", False, smoke=True)
    assert sorted(p.name for p in RESULTS.iterdir()) == before
    if "skipped" in result:
        assert "archive is not available" in result["skipped"]
        pytest.skip(result["skipped"])
    assert result["training"]["queries"] == SMOKE["queries"]
    assert result["training"]["pairs"] == SMOKE["queries"] * (1 + SMOKE["negatives"])
    evaluation = result["eval"]
    assert 0 < evaluation["questions"] <= SMOKE["questions"]
    for metric in ("mrr@10", "recall@3"):
        for name in ("dense", "reranked"):
            row = evaluation[metric][name]
            assert 0 <= row["ci95"][0] <= row["mean"] <= row["ci95"][1] <= 1
        p = evaluation[metric]["p_paired_t"]
        assert p is None or 0 <= p <= 1
    held = result["in_domain_held_out"]
    assert held["headings"] == SMOKE["held_out"] and held["candidates"] == 1 + SMOKE["negatives"]
    for name in ("dense", "reranked"):
        assert 1 / held["candidates"] <= held[name]["mrr"] <= 1 and 0 <= held[name]["top1"] <= 1
