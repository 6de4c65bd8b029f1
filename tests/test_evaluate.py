"""Evaluation: metrics against a hand-computed example, bad input, and the report's shape."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from helpers.chunking import Passage
from helpers.cli import run
from helpers.cli_eval import run_eval
from helpers.config import ROOT
from helpers.evaluate import (
    METRICS,
    STRATEGIES,
    EvalDataError,
    Question,
    build_qrels,
    compute_metrics,
    evaluate_strategies,
    load_questions,
)
from helpers.setup import choose_models

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
    assert per_query["recall@1"] == {"q1": 0.0, "q2": 0.5}
    assert per_query["recall@3"] == {"q1": 1.0, "q2": 0.5}
    assert per_query["recall@5"] == {"q1": 1.0, "q2": 1.0}
    assert per_query["mrr@10"] == {"q1": 0.5, "q2": 1.0}
    ndcg_q1 = (1 / math.log2(3)) / 1.0
    ndcg_q2 = (1 + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert per_query["ndcg@10"] == pytest.approx({"q1": ndcg_q1, "q2": ndcg_q2})
    assert means["mrr@10"] == pytest.approx(0.75)
    assert means["recall@10"] == pytest.approx(1.0)


# Twelve questions: ranx orders ids as strings (q1, q10, q11, q12, q2, ...), not as they were given.
# Question n has its one relevant passage at rank RANKS[n] (None: not retrieved), so its MRR@10 is
# 1/rank, known without any metric code.
RANKS = {1: 1, 2: 2, 3: None, 4: 1, 5: 4, 6: 1, 7: 3, 8: None, 9: 1, 10: 5, 11: None, 12: 2}
LANGS = {n: "en" if n < 10 else "de" for n in RANKS}  # the last three (q10-q12) sort before q2


def _ranked(n: int, k: int = 10) -> list[str]:
    """Passage ids for question n: fillers, with its relevant passage `rel{n}` at RANKS[n]."""
    ids = [f"other{n}_{i}" for i in range(k)]
    if RANKS[n] is not None:
        ids[RANKS[n] - 1] = f"rel{n}"
    return ids


def test_per_question_values_are_keyed_by_id_not_by_position():
    qrels = {f"q{n}": {f"rel{n}": 1} for n in RANKS}
    run = {f"q{n}": {doc: float(10 - r) for r, doc in enumerate(_ranked(n))} for n in RANKS}
    _, per_query = compute_metrics(qrels, run)
    assert list(per_query["mrr@10"]) != [f"q{n}" for n in RANKS]  # ranx's own order differs
    for n, rank in RANKS.items():
        assert per_query["mrr@10"][f"q{n}"] == (0.0 if rank is None else 1 / rank), n


class _FixedRetrieval:
    """A stand-in for `RAG` whose every search returns the ranking `_ranked` gives (no models, no Milvus)."""

    def __init__(self, passages: dict[str, Passage]):
        self.passages = passages

    def retrieve(self, question, mode, limit, instruction=None, timings=None):
        n = int(question.split()[-1])
        timings["search"] = 1.0
        return [self.passages[i] for i in _ranked(n, limit)]


def test_per_language_figures_equal_the_metric_on_that_language_alone():
    from ranx import Qrels, Run, evaluate

    passages = {f"rel{n}": Passage(id=f"rel{n}", text=f"Heading {n}?\n\nanswer") for n in RANKS}
    for n in RANKS:  # every question is judged: its relevant passage exists, retrieved or not
        passages |= {d: Passage(id=d, text=f"filler {d}") for d in _ranked(n) if d not in passages}
    questions = [
        Question(query=f"question {n}", lang=LANGS[n], relevant=(f"Heading {n}?",), line=n) for n in RANKS
    ]
    report = evaluate_strategies(_FixedRetrieval(passages), questions, list(passages.values()), ("dense",))
    by_hand = {n: 0.0 if r is None else 1 / r for n, r in RANKS.items()}
    for lang in ("en", "de"):
        mine = [n for n in RANKS if LANGS[n] == lang]
        alone = evaluate(
            Qrels({f"q{n}": {f"rel{n}": 1} for n in mine}),
            Run({f"q{n}": {d: float(10 - r) for r, d in enumerate(_ranked(n))} for n in mine}),
            "mrr@10",
        )
        reported = report["per_language"][lang]["dense"]["mrr@10"]
        assert reported == pytest.approx(alone, abs=1e-4)
        assert reported == pytest.approx(sum(by_hand[n] for n in mine) / len(mine), abs=1e-4)
    assert report["languages"] == {"de": 3, "en": 9}


def test_qrels_match_labels_by_text():
    chunks = [
        Passage(id="1", text="Where does Milvus store data?\n\nIn S3.", source="f.md", title="t"),
        Passage(id="2", text="Other", source="f.md", title="t"),
    ]
    questions = [
        Question(query="store?", relevant=("Where does Milvus store data?",), line=1),
        Question(query="x", relevant=("Nope",), line=2),
    ]
    assert build_qrels(questions, chunks) == {"q1": {"1": 1}}


def test_shipped_question_files_are_valid():
    faq = load_questions(FAQ_QUESTIONS)
    assert len(faq) >= 60
    assert sum(q.lang != "en" for q in faq) >= 15
    assert {"zh", "es", "de", "fr", "ja"} <= {q.lang for q in faq}
    assert len(load_questions(SAMPLE_QUESTIONS)) >= 10


def test_faq_labels_all_match_a_passage(archive_zip, base_settings):
    from helpers.chunking import chunk_documents, load_corpus

    chunks = chunk_documents(load_corpus("milvus-faq", base_settings).documents)
    questions = load_questions(FAQ_QUESTIONS)
    assert len(build_qrels(questions, chunks)) == len(questions)


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("{not json", "Invalid JSON"),
        ('["a list"]', "should be an object"),
        ('{"query": "", "lang": "en", "relevant": ["x"]}', "'query'"),
        ('{"query": "q", "lang": "en", "relevant": []}', "'relevant'"),
        ('{"query": "q", "lang": "en"}', "'relevant'"),
        ('{"query": "q", "lang": "en", "relevant": [3]}', "'relevant.0'"),
        ('{"query": "  ", "lang": "en", "relevant": ["x"]}', "'query'"),
        ('{"query": "q", "lang": "", "relevant": ["x"]}', "'lang'"),
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
        strategies=STRATEGIES,
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


def test_default_strategies_leave_out_the_random_reranker(settings, tmp_path):
    """With the offline kit no trained reranker runs: its rows would only measure a random stand-in."""
    subset = tmp_path / "two.jsonl"
    subset.write_text("\n".join(SAMPLE_QUESTIONS.read_text(encoding="utf-8").splitlines()[:2]) + "\n")
    report = run_eval(subset, settings, choose_models(settings), corpus="sample")
    assert list(report["strategies"]) == ["dense", "bm25", "hybrid"]


def test_faq_questions_without_the_archive_name_the_sample_questions(base_settings, tmp_path, capsys):
    settings = base_settings.with_overrides(
        docs_zip="",
        docs_url="http://127.0.0.1:9/milvus_docs_2.4.x_en.zip",  # refused at once
        cache_dir=str(tmp_path / "cache"),
        milvus_uri=str(tmp_path / "e.db"),
    )
    with pytest.raises(EvalDataError, match=r"--queries data/eval/sample_questions\.jsonl"):
        run_eval(FAQ_QUESTIONS, settings, choose_models(settings))
    assert capsys.readouterr().err.count("the Milvus docs archive is not available") == 1
    assert not Path(settings.milvus_uri).exists()  # it stopped before indexing anything
