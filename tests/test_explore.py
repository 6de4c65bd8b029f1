"""Notebook 07's explorer without a browser: `explore`, `disagreements` and the widget driven from Python.

Every expectation comes from outside `helpers.explore`: the ids from pymilvus's own `search`/`hybrid_search`,
the relevance marks from the question's `relevant` labels, RRF scores and reciprocal ranks by hand.
"""

from __future__ import annotations

import dataclasses
import socket

import pytest
from pymilvus import AnnSearchRequest, RRFRanker

from helpers.config import Settings
from helpers.evaluate import load_questions
from helpers.explore import DEPTH, Explorer, disagreements, explore
from helpers.pipeline import RAG
from helpers.rerank import Reranker
from helpers.setup import QUESTIONS, choose_models

OFFLINE = choose_models(Settings(models="offline"))
QUESTION = "How is data stored in milvus?"


@pytest.fixture(scope="module")
def corpus(base_settings) -> str:
    """The FAQ where the archive is available (as in CI), else the sample corpus."""
    from helpers.chunking import find_archive

    return "milvus-faq" if find_archive(base_settings, download=False)[0] else "sample"


@pytest.fixture(scope="module")
def questions(corpus):
    return load_questions(QUESTIONS[corpus])


@pytest.fixture(scope="module")
def rag(base_settings, minilm, corpus, tmp_path_factory) -> RAG:
    db = tmp_path_factory.mktemp("explore") / "explore.db"
    rag = RAG(base_settings.with_overrides(milvus_uri=str(db)), OFFLINE, embedder=minilm)
    rag.ingest(corpus, progress=False)
    yield rag
    rag.close()


def _library(rag: RAG, question: str) -> dict[str, list[dict]]:
    """The three searches through pymilvus alone, 10 deep."""
    client, name = rag.store.client, rag.settings.collection
    vector = rag.embedder.model.encode_query([question], normalize_embeddings=True)[0].tolist()
    dense = {"metric_type": "IP", "params": {"ef": 64}}
    sparse = {"metric_type": "BM25"}
    requests = [
        AnnSearchRequest([vector], "dense", dense, limit=DEPTH),
        AnnSearchRequest([question], "sparse", sparse, limit=DEPTH),
    ]
    return {
        "dense": client.search(name, [vector], anns_field="dense", search_params=dense, limit=DEPTH)[0],
        "bm25": client.search(name, [question], anns_field="sparse", search_params=sparse, limit=DEPTH)[0],
        "hybrid": client.hybrid_search(name, requests, ranker=RRFRanker(60), limit=DEPTH)[0],
    }  # fmt: skip


def test_each_strategy_ranks_what_pymilvus_alone_returns(rag):
    found = explore(rag, QUESTION, k=3)
    for name, hits in _library(rag, QUESTION).items():
        assert [h.id for h in found.hits[name]] == [h["id"] for h in hits], name
    assert list(found.hits) == ["dense", "bm25", "hybrid"] and found.k == 3


def test_hybrid_scores_are_rrf_of_the_dense_and_bm25_ranks(rag):
    found = explore(rag, QUESTION)
    dense = {h.id: n for n, h in enumerate(found.hits["dense"], 1)}
    bm25 = {h.id: n for n, h in enumerate(found.hits["bm25"], 1)}
    for hit in found.hits["hybrid"]:
        by_hand = sum(1 / (60 + ranks[hit.id]) for ranks in (dense, bm25) if hit.id in ranks)
        assert hit.score == pytest.approx(by_hand, rel=1e-5)


def test_table_has_a_column_block_per_strategy_and_k_rows(rag):
    table = explore(rag, QUESTION, ("dense", "hybrid"), k=4).table()
    assert list(table.columns.get_level_values(0).unique()) == ["dense", "hybrid"]
    assert list(table["dense"].columns) == ["✓", "score", "heading", "snippet"]
    assert list(table.index) == [1, 2, 3, 4]
    assert all("\n" not in s for s in table["dense"]["snippet"])  # one line each


def test_the_faq_answer_is_in_the_dense_top_3(rag, corpus):
    if corpus != "milvus-faq":
        pytest.skip("needs the Milvus docs archive")
    assert (
        "Where does Milvus store data?"
        in explore(rag, QUESTION, ("dense",), k=3).table()["dense"]["heading"].tolist()
    )


def test_relevant_marks_and_reciprocal_ranks_follow_the_labels(rag, questions):
    for q in questions[:12]:
        found = explore(rag, q.query, k=DEPTH, relevant=q.relevant)
        for name, hits in found.hits.items():
            marks = [row["✓"] for row in found.rows(name)]  # BM25 may find fewer than DEPTH
            assert marks == ["✓" if any(r in h.text for r in q.relevant) else "" for h in hits[:DEPTH]]
            first = next((n for n, m in enumerate(marks, 1) if m), None)
            assert found.reciprocal_rank(name) == (1 / first if first else 0.0)
    assert explore(rag, QUESTION).reciprocal_rank("dense") is None  # not a labelled question: no RR


def test_snippets_highlight_the_question_words(rag):
    found = explore(rag, QUESTION, ("bm25",), k=1)
    assert (
        "<mark>Milvus</mark>" in found._repr_html_() or "<mark>milvus</mark>" in found._repr_html_().lower()
    )
    assert "**" in repr(found) and "RR@" not in repr(found)  # an unlabelled question has no RR line


def test_bad_arguments_are_one_line_value_errors(rag):
    for kwargs, message in [
        ({"question": "   "}, "The question is empty"),
        ({"question": QUESTION, "strategies": ("dense", "sparse")}, "Choose strategies among"),
        ({"question": QUESTION, "k": 0}, "top-k must be between 1 and 10"),
        ({"question": QUESTION, "strategies": ("reranked",)}, "Reranked is off"),
    ]:
        with pytest.raises(ValueError, match=message):
            explore(rag, **kwargs)


def test_disagreements_are_ordered_by_the_reciprocal_rank_gap(rag, questions):
    questions = questions[::3]  # every third: several languages, a third of the time
    table = disagreements(rag, questions, "dense", "bm25")
    assert len(table) == len(questions) and set(table["lang"]) == {q.lang for q in questions}
    gaps = table["RR difference"].abs().tolist()
    assert gaps == sorted(gaps, reverse=True)
    for row in table.head(5).to_dict("records"):  # the gap from the two ranks, by hand
        rr = [0.0 if str(r).startswith(">") else 1 / r for r in (row["dense rank"], row["bm25 rank"])]
        assert row["RR difference"] == pytest.approx(rr[0] - rr[1])


# --- the widget, driven as a learner drives it ------------------------------------------------------


def test_typing_a_question_shows_the_table_and_the_status_line(rag, questions, corpus):
    ui = Explorer(rag, questions, k=3)
    ui.question.value = QUESTION  # what Enter does (continuous_update=False)
    assert "<th>dense</th><th>bm25</th><th>hybrid</th>" in ui.table.value
    assert ui.table.value.count("<tr>") == 1 + 3 and "not a labelled question" in ui.status.value
    if corpus == "milvus-faq":
        assert "Where does Milvus store data?" in ui.table.value
    ui.toggles["bm25"].value = False
    ui.top_k.value = 5
    assert "<th>bm25</th>" not in ui.table.value and ui.table.value.count("<tr>") == 1 + 5


def test_a_labelled_question_shows_its_relevant_passages(rag, questions):
    ui = Explorer(rag, questions)
    q = next(
        q for q in questions if explore(rag, q.query, ("dense",), relevant=q.relevant).rank("dense") == 1
    )
    ui.labelled.value = q.line
    assert ui.question.value == q.query
    assert "labelled question" in ui.status.value and "labelled relevant" in ui.table.value
    assert "RR@10: dense 1.000 (rank 1)" in ui.table.value


def test_reranked_is_disabled_with_the_reason_on_the_offline_kit(rag, questions):
    ui = Explorer(rag, questions)
    assert ui.toggles["reranked"].disabled and not ui.toggles["reranked"].value
    assert "Reranked is off" in ui.note.value and "stand-in (random weights)" in ui.note.value
    assert "reranked" not in ui.a.options and "reranked" not in ui.b.options


def test_empty_question_is_one_line_in_the_widget(rag, questions):
    ui = Explorer(rag, questions)
    ui.question.value = QUESTION
    ui.question.value = "   "
    assert ui.table.value == "" and "⚠ The question is empty" in ui.status.value
    assert "Traceback" not in ui.status.value and ui.status.value.count("<div") == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_milvus_is_one_line_in_the_widget(base_settings, minilm, questions):
    uri = f"http://127.0.0.1:{_closed_port()}"
    ui = Explorer(RAG(base_settings.with_overrides(milvus_uri=uri), OFFLINE, embedder=minilm), questions)
    ui.question.value = QUESTION
    assert ui.table.value == "" and f"⚠ Could not connect to the Milvus server at {uri}" in ui.status.value
    assert "Traceback" not in ui.status.value


def test_a_model_that_cannot_load_is_one_line_in_the_widget(base_settings, questions, tmp_path):
    missing = dataclasses.replace(OFFLINE, embedding_model=str(tmp_path / "no-such-model"))
    ui = Explorer(RAG(base_settings.with_overrides(milvus_uri=str(tmp_path / "m.db")), missing), questions)
    assert "⚠" in ui.status.value and "no-such-model" in ui.status.value  # said as soon as it shows
    ui.question.value = QUESTION
    assert ui.table.value == "" and "no-such-model" in ui.status.value and "Traceback" not in ui.status.value


def test_the_disagreement_view_loads_the_chosen_question(rag, questions):
    questions = questions[:20]
    ui = Explorer(rag, questions)
    ui.a.value, ui.b.value = "dense", "hybrid"
    ui.compare.click()
    labels = [label for label, _ in ui.ranked.options]
    assert len(labels) == len(questions) and "largest |RR@10(dense) - RR@10(hybrid)| first" in ui.status.value
    expected = disagreements(rag, questions, "dense", "hybrid")
    assert [line for _, line in ui.ranked.options] == expected["line"].tolist()
    ui.ranked.value = expected.loc[0, "line"]
    chosen = next(q for q in questions if q.line == expected.loc[0, "line"])
    assert ui.question.value == chosen.query and ui.labelled.value == chosen.line
    assert "labelled relevant" in ui.table.value or "not in top 10" in ui.table.value


def test_reranked_shows_the_rank_each_passage_had_before(
    base_settings, minilm, tiny_cross_encoder, questions, rag
):
    """Where a reranker runs (the stand-in, for the mechanics): dense's 10 reordered, `was N` from dense."""
    from helpers.offline.standins import TINY_RERANKER_ID

    choice = dataclasses.replace(OFFLINE, kit="qwen3")  # `auto` reranks in the qwen3 kit
    reranker = Reranker(tiny_cross_encoder, TINY_RERANKER_ID, is_stand_in=True)
    with_reranker = RAG(rag.settings, choice, embedder=minilm, rerankers={"qwen3": reranker})
    found = explore(with_reranker, QUESTION, ("dense", "reranked"), k=DEPTH)
    dense_rank = {h.id: n for n, h in enumerate(found.hits["dense"], 1)}
    assert sorted(h.id for h in found.hits["reranked"]) == sorted(dense_rank)
    table = found.table()["reranked"]
    assert table["was"].tolist() == [dense_rank[h.id] for h in found.hits["reranked"]]
    scores = reranker.score(QUESTION, [h.text for h in found.hits["dense"]])
    assert table["score"].tolist() == pytest.approx(sorted(scores.tolist(), reverse=True))
    ui = Explorer(with_reranker, questions)
    assert not ui.toggles["reranked"].disabled and ui.note.value == ""
    ui.toggles["reranked"].value = True
    ui.question.value = QUESTION
    assert "<th>reranked</th>" in ui.table.value and "was " in ui.table.value and "rerank" in ui.table.value
