"""Evaluation: metrics against a hand-computed example, bad input, and the report's shape."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from helpers.__main__ import run
from helpers.config import ROOT
from helpers.evaluate import (
    METRICS,
    STRATEGIES,
    EvalDataError,
    Question,
    build_qrels,
    compute_metrics,
    load_questions,
    run_eval,
)
from helpers.models import choose_models
from helpers.passage import Passage

SAMPLE_QUESTIONS = ROOT / "data" / "eval" / "sample_questions.jsonl"
FAQ_QUESTIONS = ROOT / "data" / "eval" / "milvus_faq_questions.jsonl"


def test_metrics_match_a_hand_computed_example():
    # q1: one relevant doc (a) at rank 2.  q2: two relevant docs (b, c) at ranks 1 and 4.
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}}
    run = {
        "q1": {"x": 4.0, "a": 3.0, "y": 2.0, "z": 1.0},
        "q2": {"b": 4.0, "x": 3.0, "y": 2.0, "c": 1.0},
    }
    means, per_query = compute_metrics(qrels, run)
    assert per_query["recall@1"].tolist() == [0.0, 0.5]
    assert per_query["recall@3"].tolist() == [1.0, 0.5]
    assert per_query["recall@5"].tolist() == [1.0, 1.0]
    assert per_query["mrr@10"].tolist() == [0.5, 1.0]
    ndcg_q1 = (1 / math.log2(3)) / 1.0
    ndcg_q2 = (1 + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert per_query["ndcg@10"].tolist() == pytest.approx([ndcg_q1, ndcg_q2])
    assert means["mrr@10"] == pytest.approx(0.75)
    assert means["recall@10"] == pytest.approx(1.0)


def test_qrels_match_labels_by_text():
    chunks = [
        Passage(id="1", text="Where does Milvus store data?\n\nIn S3.", source="f.md", title="t"),
        Passage(id="2", text="Other", source="f.md", title="t"),
    ]
    questions = [
        Question("store?", "en", ("Where does Milvus store data?",), 1),
        Question("x", "en", ("Nope",), 2),
    ]
    assert build_qrels(questions, chunks) == {"q1": {"1": 1}}


def test_shipped_question_files_are_valid():
    faq = load_questions(FAQ_QUESTIONS)
    assert len(faq) >= 60
    assert sum(q.lang != "en" for q in faq) >= 15
    assert {"zh", "es", "de", "fr", "ja"} <= {q.lang for q in faq}
    assert len(load_questions(SAMPLE_QUESTIONS)) >= 10


def test_faq_labels_all_match_a_passage(archive_zip, base_settings):
    from helpers.data import chunk_documents, load_corpus

    chunks = chunk_documents(load_corpus("milvus-faq", base_settings).documents)
    questions = load_questions(FAQ_QUESTIONS)
    assert len(build_qrels(questions, chunks)) == len(questions)


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"query": "", "lang": "en", "relevant": ["x"]}', "'query'"),
        ('{"query": "q", "lang": "en", "relevant": []}', "'relevant'"),
        ('{"query": "q", "lang": "en"}', "'relevant'"),
        ('{"query": "q", "lang": "en", "relevant": [3]}', "'relevant'"),
    ],
)
def test_malformed_lines_name_the_line(tmp_path, line, needle):
    path = tmp_path / "q.jsonl"
    path.write_text('{"query": "ok", "lang": "en", "relevant": ["x"]}\n' + line + "\n")
    with pytest.raises(EvalDataError, match=rf"q\.jsonl:2: .*{needle}"):
        load_questions(path)


def test_missing_file(tmp_path):
    with pytest.raises(EvalDataError, match="does not exist"):
        load_questions(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--queries", "missing.jsonl"],
        ["eval", "--queries", str(SAMPLE_QUESTIONS), "--strategies", "dense,colbert"],
        ["eval", "--queries", str(SAMPLE_QUESTIONS), "--dims", "0"],
        ["eval", "--queries", str(SAMPLE_QUESTIONS), "--k", "0"],
    ],
)
def test_cli_bad_input_exits_2(argv, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_LITE_FILE", str(tmp_path / "e.db"))
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(run(argv))
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_report_has_every_field(settings, tmp_path):
    # Six questions (two of them not in English) keep the five strategies x five settings quick.
    lines = SAMPLE_QUESTIONS.read_text(encoding="utf-8").splitlines()
    english = [ln for ln in lines if '"lang": "en"' in ln][:4]
    other = [ln for ln in lines if '"lang": "de"' in ln or '"lang": "es"' in ln][:2]
    subset = tmp_path / "subset.jsonl"
    subset.write_text("\n".join(english + other) + "\n", encoding="utf-8")
    report = run_eval(
        subset,
        settings,
        choose_models(settings),
        corpus="sample",
        dims=(32, 4096),
        instructions=("none", "default", "Find the FAQ entry that answers the question"),
    )
    assert {"n_queries", "models", "corpus", "chunker", "strategies", "per_language", "latency_ms"} <= set(
        report
    )
    assert report["n_queries"] == len(load_questions(subset)) == 6
    assert set(report["strategies"]) == set(STRATEGIES)
    for name, metrics in report["strategies"].items():
        assert set(METRICS) <= set(metrics)
        assert all(0.0 <= metrics[m] <= 1.0 for m in METRICS)
        if name.endswith("rerank"):
            assert metrics["reranker"] == "stand-in (random weights)"
            assert "rerank" in report["latency_ms"][name]
    assert report["strategies"]["dense"]["recall@10"] >= report["strategies"]["dense"]["recall@1"]
    assert "en" in report["per_language"] and len(report["per_language"]) >= 2
    assert set(report["ablations"]["instruction"]) == {
        "none",
        "default",
        "Find the FAQ entry that answers the question",
    }
    assert set(report["ablations"]["dims"]["32"]) == set(STRATEGIES)
    assert "skipped" in report["ablations"]["dims"]["4096"]
    json.dumps(report)  # serialisable
    # Everything was indexed in a scratch place, now gone: the user's Lite file was never created.
    assert not Path(settings.milvus_uri).exists()
