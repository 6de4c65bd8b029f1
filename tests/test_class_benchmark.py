"""`python -m benchmarks class` on four learners: nothing fails, nothing is lost, every collection is whole.

Four processes on one `milvus-lite server` on 127.0.0.1 run the course's ingest and dense, BM25 and hybrid
searches at once, each in its own collection, then all in one shared collection. No timing is asserted.
"""

from __future__ import annotations

from benchmarks.classroom import run


def test_four_learners_lose_nothing_and_see_no_error(base_settings):
    result = run(base_settings, "cpu", quick=False, only="own,shared", smoke=True)
    assert result["passages"] > 0
    for name, collections in (("own", "4/4"), ("shared", "1/1")):
        four = result["results"][name]["4"]
        assert four["learners"] == 4 and four["searches"] == 4 * 6, name
        assert (four["errors"], four["empty_results"]) == (0, 0), four["first_errors"]
        assert four["ingest_errors"] == [], name
        assert four["collections_exactly_right"] == collections, name
        assert four["rows_seen_after"] == [str(result["passages"])], name
        assert set(four["latency_ms"]) == {"dense", "bm25", "hybrid"}, name
