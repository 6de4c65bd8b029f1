"""Every benchmark's code path at smoke size (a handful of items, tiny models), so a crash fails CI.

The checks are on behaviour, never on speed: the result has its keys, its numbers are finite and in
range, two implementations of the same maths agree, and a skipped run says why. Smoke runs save
nothing: no test may change benchmarks/results/. The int8 variant the precision benchmark measures
(`benchmarks.models.quantize_int8`, not a course setting) is checked here too.
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.common import RESULTS, available_memory
from benchmarks.corpus import QUESTIONS, faq_passages
from helpers.offline.standins import TINY_EMBEDDER_ID, TINY_RERANKER_ID

AGREE = 1e-5  # fp32 scores of the same model, computed two ways
COSINE = 0.9999  # fp32 embeddings of the same model, computed two ways


def smoke(name: str, settings) -> dict:
    """`python -m benchmarks NAME --smoke`'s run, on the CPU; its result is valid JSON (no NaN)."""
    result = importlib.import_module(f"benchmarks.{name}").run(settings, "cpu", False, smoke=True)
    json.dumps(result, allow_nan=False)
    return result


def numbers(tree) -> list[float]:
    """Every int and float in a nested result (booleans left out)."""
    if isinstance(tree, dict):
        return [x for v in tree.values() for x in numbers(v)]
    if isinstance(tree, list):
        return [x for v in tree for x in numbers(v)]
    return [tree] if isinstance(tree, int | float) and not isinstance(tree, bool) else []


def assert_percentiles(row: dict) -> None:
    """Latency percentiles are non-negative and ordered."""
    values = [row[k] for k in ("p50", "p95", "p99") if k in row]
    assert values[0] >= 0 and values == sorted(values), row


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Name -> (modification time, size) of every file in `folder`."""
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.iterdir()}


@pytest.fixture(autouse=True)
def results_untouched():
    """A smoke run must leave benchmarks/results/ as it found it."""
    before = snapshot(RESULTS)
    yield
    assert snapshot(RESULTS) == before


@pytest.fixture(scope="module")
def faq(base_settings) -> list[str]:
    """The FAQ passages, longest first (as the rerank benchmark picks its candidates)."""
    return sorted(faq_passages(base_settings)[0], key=len, reverse=True)


# --- the reference reranker's memory rule ---------------------------------------------------------


def test_reference_size_is_the_logits_the_reference_builds(tiny_cross_encoder, faq):
    """The estimate equals the bytes of the LM head's output when the reference runs on the same pairs."""
    from reference_reranker import reference_scores

    from benchmarks.rerank import reference_logits_bytes

    model, tok = tiny_cross_encoder.model, tiny_cross_encoder.tokenizer
    docs = [faq[0], faq[-1], faq[len(faq) // 2]]  # unequal lengths: the batch is padded
    seen: list[int] = []
    hook = model.get_output_embeddings().register_forward_hook(
        lambda _m, _i, out: seen.append(out.numel() * out.element_size())
    )
    try:
        reference_scores(model, tok, QUESTIONS[0], docs)
    finally:
        hook.remove()
    assert seen == [reference_logits_bytes(model, tok, QUESTIONS[0], docs)]


def test_reference_skipped_when_its_logits_do_not_fit(tiny_cross_encoder, faq, monkeypatch):
    """Below logits x (1 + MARGIN) of available memory the run is skipped with the reason; at it, it runs."""
    import benchmarks.rerank as rerank
    from benchmarks.levers import rerank_levers

    ce, docs = tiny_cross_encoder, faq[:2]
    need = rerank.reference_logits_bytes(ce.model, ce.tokenizer, QUESTIONS[0], docs)
    enough = math.ceil(need * (1 + rerank.MARGIN))
    assert rerank.reference_skip_reason(ce.model, ce.tokenizer, QUESTIONS[0], docs, "cpu", enough) is None
    reason = rerank.reference_skip_reason(ce.model, ce.tokenizer, QUESTIONS[0], docs, "cpu", enough - 1)
    assert reason is not None
    assert f"{need / 1e9:.1f} GB of float32 logits for 2 pairs" in reason
    assert f"{(enough - 1) / 1e9:.1f} GB available" in reason

    monkeypatch.setattr(rerank, "available_memory", lambda device: enough - 1)
    skipped = rerank.compare(ce, "tiny", docs, "cpu", 1)
    assert skipped == {"candidates": 2, "skipped": reason}
    assert rerank_levers(ce, docs, "cpu", 1) == {"candidates": 2, "skipped": reason}

    monkeypatch.setattr(rerank, "available_memory", lambda device: enough)
    ran = rerank.compare(ce, "tiny", docs, "cpu", 1)
    assert "skipped" not in ran and ran["max_abs_diff"] < AGREE


def test_available_memory_reads_meminfo():
    """MemAvailable in bytes: positive and no more than MemTotal."""
    total = next(
        int(line.split()[1]) * 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    assert 0 < available_memory("cpu") <= total


# --- one smoke run per benchmark ------------------------------------------------------------------


def test_embed(base_settings):
    from benchmarks.embed import SMOKE_TEXTS

    models = smoke("embed", base_settings)["models"]
    assert len(models) == 2
    for entry in models.values():
        row = entry["corpora"]["faq"]
        assert row["chunks"] == SMOKE_TEXTS and row["tokens"] > 0
        # The tutorial's loop and the library's batched call: the same vectors.
        assert row["max_abs_diff"] < 1e-4 and row["min_cosine"] > COSINE
        assert row["library"]["call"] == "SentenceTransformer.encode_document"
        assert set(row["library"]["tokens_per_s_by_batch_size"]) == {"4", "8"}
        assert str(row["library"]["batch_size"]) in row["library"]["tokens_per_s_by_batch_size"]
        # helpers' Embedder is that same call, batched by token length on a CPU: the same vectors (to the
        # rounding of other batch-mates); its cost and its speed against the loop are reported.
        embedder = row["helpers_embedder"]
        assert embedder["batching"] == "token_batches (CPU)"
        assert embedder["max_abs_diff_vs_library"] < 1e-5
        assert row["course_vs_loop"] > 0 and row["course_vs_loop_cpu"] > 0
        assert embedder["seconds_ratio_to_library"] > 0
        assert row["speedup"] > 0 and "padding_fraction" not in json.dumps(row)
        assert all(math.isfinite(x) for x in numbers(row))


def test_rerank_through_the_cli(capsys):
    """`python -m benchmarks rerank --smoke --json`: the reference runs and agrees; nothing is saved."""
    from benchmarks.__main__ import main
    from benchmarks.rerank import SMOKE_CANDIDATES

    assert main(["rerank", "--smoke", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    (entry,) = payload["result"]["models"].values()
    row = entry["candidates"][str(SMOKE_CANDIDATES)]
    assert "skipped" not in row, row.get("skipped")
    assert row["candidates"] == SMOKE_CANDIDATES
    assert row["max_abs_diff"] < AGREE
    assert row["speedup"] > 0 and row["reference"]["pairs_per_s"] > 0 and row["fast"]["pairs_per_s"] > 0
    assert payload["input"] == str(SMOKE_CANDIDATES) and payload["max_abs_diff"] == row["max_abs_diff"]


def test_milvus(base_settings):
    from benchmarks.milvus import EF_CANDIDATES, SMOKE_QUERIES, SMOKE_ROWS

    result = smoke("milvus", base_settings)
    assert result["queries"] == SMOKE_QUERIES
    rows = result["results"][str(SMOKE_ROWS)]
    assert set(rows) == {"FLAT (lite file)", "HNSW (lite file)", "HNSW (lite gRPC server)"}
    assert rows["FLAT (lite file)"]["recall@10"] >= 0.99  # exact search
    for name, row in rows.items():
        assert row["rows"] == SMOKE_ROWS and row["insert_rows_per_s"] > 0
        assert 0 <= row["recall@10"] <= 1
        if name.startswith("HNSW"):  # the smallest ef that reaches 0.95, or the largest tried
            assert row["recall@10"] >= 0.95 or row["ef"] == EF_CANDIDATES[-1]
        assert_percentiles(row["latency_ms"])
    assert rows["FLAT (lite file)"]["disk_mb"] > 0


def test_ask(base_settings):
    from benchmarks.ask import SMOKE_QUESTIONS

    result = smoke("ask", base_settings)
    assert result["questions"] == SMOKE_QUESTIONS
    stages = result["latency_ms"]
    assert {"embed_query", "search", "rerank", "generate", "total"} <= set(stages)
    for row in stages.values():
        assert_percentiles(row)
        assert stages["total"]["p50"] >= row["p50"]  # every question's total holds each of its stages


def test_precision(base_settings):
    from benchmarks.precision import SMOKE_CANDIDATES, SMOKE_CHUNKS, variants

    result = smoke("precision", base_settings)
    for entry in result["embed"].values():
        assert entry["chunks"] == SMOKE_CHUNKS
        assert set(entry["variants"]) == set(variants("cpu"))
        assert entry["variants"]["float32"]["batch_vs_single_min_cosine"] > COSINE
        for dtype, row in entry["variants"].items():
            assert all(0 <= v <= 1 for v in row.get("quality", {}).values())
            if dtype != "float32":
                assert row["min_cosine_to_fp32"] > (0.99 if dtype == "bfloat16" else 0.9), (dtype, row)
    assert "quality" in next(iter(result["embed"].values()))["variants"]["float32"]  # the trained embedder
    for entry in result["rerank"].values():
        assert entry["candidates"] == SMOKE_CANDIDATES
        for dtype, row in entry["variants"].items():
            assert row["pairs_per_s"] > 0
            if dtype != "float32":
                assert row["max_abs_diff"] < 0.05 and -1 <= row["kendall_tau_with_fp32"] <= 1


def test_levers(base_settings):
    from benchmarks.levers import SMOKE_CANDIDATES, SMOKE_TEXTS

    result = smoke("levers", base_settings)
    (embed,) = result["embed"].values()
    assert embed["texts"] == SMOKE_TEXTS
    levers = {k: v for k, v in embed["rows"].items() if k != "baseline_st_encode"}
    assert set(levers) == {"packed_varlen_1024"}  # helpers' Embedder is the baseline's call: no lever
    for name, row in levers.items():
        assert "error" not in row, (name, row)
        assert row["min_cosine_vs_st_encode"] > COSINE and row["speedup_vs_st_encode"] > 0
    (rerank,) = result["rerank"].values()
    assert "skipped" not in rerank, rerank.get("skipped")
    assert rerank["candidates"] == SMOKE_CANDIDATES
    for name in ("fast_cross_encoder", "yes_minus_no"):
        assert rerank["rows"][name]["max_abs_diff_vs_reference"] < AGREE


def test_notebooks(base_settings):
    """The smoke run executes notebooks/00_setup.ipynb only, without a failing cell."""
    result = smoke("notebooks", base_settings)
    for name in ("core_cache_off", "core_cache_on", "whole_cache_on"):
        course = result[name]
        assert list(course["seconds"]) == ["00_setup"] and course["failures"] == {}
        row = course["seconds"]["00_setup"]
        assert row["total"] == pytest.approx(row["core"] + row["exercises"] + row["deep dive"], abs=0.11)
        assert row["core"] > 0 and row["exercises"] == 0  # 00 has no exercises
        assert (row["deep dive"] > 0) is (name == "whole_cache_on")  # the core runs leave the deep dive out
    assert result["core_minutes"]["cache_on"] == round(result["core_cache_on"]["sums"]["total"] / 60, 1)


def test_notebooks_fresh_cache_keeps_all_but_the_vectors(tmp_path):
    """The cache-on run starts from an empty vector cache and shares the models and archive as they are."""
    from benchmarks.notebooks import _fresh_cache

    cache = tmp_path / "cache"
    (cache / "stand-ins").mkdir(parents=True)
    for name in ("embeddings.sqlite", "embeddings.sqlite-wal", "archive.zip"):
        (cache / name).write_text(name)
    fresh = _fresh_cache(cache, tmp_path)
    assert sorted(p.name for p in fresh.iterdir()) == ["archive.zip", "stand-ins"]
    assert (fresh / "archive.zip").read_text() == "archive.zip" and (fresh / "stand-ins").is_dir()


def test_explore(base_settings):
    """Each strategy alone and all together, reranked included (the tiny stand-in), timed per question."""
    from benchmarks.explore import SMOKE_QUESTIONS

    result = smoke("explore", base_settings)
    cases = result["latency_ms"]
    assert list(cases) == ["dense", "bm25", "hybrid", "reranked", "all together"]
    for row in cases.values():
        assert row["questions"] == SMOKE_QUESTIONS
        assert_percentiles(row)


def test_serving(base_settings):
    """Infinity serves the offline kit's embedder with in-process vectors; `ask` runs both ways."""
    from benchmarks import serving

    try:
        serving._infinity()
    except SystemExit as exc:
        pytest.skip(str(exc))
    result = smoke("serving", base_settings)
    (throughput,) = result["throughput"].values()
    assert throughput["passages"] == serving.SMOKE_TEXTS
    runs = {k: v for k, v in throughput.items() if isinstance(v, dict)}
    assert len(runs) == 4
    for name, row in runs.items():
        assert row["max_abs_diff_vs_st_encode"] < 1e-4, name  # same weights, fp32, served or not
        assert row["passages_per_s"] > 0
    assert set(result["ask_latency_ms"]) == {"in-process", "served"}
    for stages in result["ask_latency_ms"].values():
        for row in stages.values():
            assert_percentiles(row)


def test_plot(tmp_path, capsys):
    """The figure is drawn from the saved results into a given file; without results it says so."""
    from benchmarks.__main__ import main
    from benchmarks.plot import main as plot
    from benchmarks.plot import rows

    assert rows() and all(math.isfinite(r["speedup"]) and r["speedup"] > 0 for r in rows())
    out = plot(out=tmp_path / "summary.png")
    assert out == tmp_path / "summary.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="No saved embed/rerank results"):
        plot(tmp_path, out=tmp_path / "empty.png")
    assert main(["plot", "--smoke"]) == 0
    assert "not saved" in capsys.readouterr().out


# --- int8 dynamic quantisation (benchmarks.models.quantize_int8, CPU) ------------------------------

INT8_TEXTS = ["Milvus stores data in MinIO or S3.", "How do I install Milvus on Windows?", "nlist and nprobe"]


@pytest.fixture(scope="module")
def fp32_cpu(base_settings):
    """Settings that load a model in float32 on the CPU, as the int8 variant starts."""
    return base_settings.with_overrides(device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def int8_cross_encoder(fp32_cpu):
    """A fresh tiny reranker stand-in, quantised in place (never the shared `tiny_cross_encoder`)."""
    from benchmarks.models import quantize_int8
    from helpers.rerank import load_reranker

    ce = load_reranker(TINY_RERANKER_ID, fp32_cpu)
    quantize_int8(ce.model)
    return ce


def test_int8_quantises_every_linear_but_the_lm_head(int8_cross_encoder):
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    model = int8_cross_encoder.model
    plain = [n for n, m in model.named_modules() if type(m) is torch.nn.Linear]
    quantised = [n for n, m in model.named_modules() if isinstance(m, DynamicInt8Linear)]
    assert plain == ["lm_head"]
    assert len(quantised) == 7 * model.config.num_hidden_layers  # q, k, v, o, gate, up, down
    assert model.lm_head.weight.dtype == torch.float32


def test_int8_reranker_fast_path_equals_the_reference_on_the_same_model(int8_cross_encoder):
    from reference_reranker import reference_scores

    from helpers.rerank import Reranker

    ce, query = int8_cross_encoder, "Where is data stored?"
    docs = ["Milvus keeps data in object storage.", "Use Docker on Windows.", "Partitions split data."]
    fast = Reranker(ce, TINY_RERANKER_ID).score(query, docs)
    ref = reference_scores(ce.model, ce.tokenizer, query, docs)
    assert np.abs(fast - ref).max() < 1e-4


def test_int8_embedder_stays_close_to_fp32(fp32_cpu):
    from benchmarks.models import quantize_int8
    from helpers.embedding import Embedder, load_embedder

    fp32 = Embedder(load_embedder(TINY_EMBEDDER_ID, fp32_cpu), TINY_EMBEDDER_ID)
    st = load_embedder(TINY_EMBEDDER_ID, fp32_cpu)
    quantize_int8(st[0].model)
    int8 = Embedder(st, TINY_EMBEDDER_ID)
    a, b = fp32.encode_documents(INT8_TEXTS), int8.encode_documents(INT8_TEXTS)
    cosine = (a.astype(np.float64) * b).sum(axis=1)
    assert (cosine > 0.95).all() and not np.allclose(a, b, atol=1e-6)  # close, but really quantised
