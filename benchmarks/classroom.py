"""A class on one Milvus: N learners, each its own process, on one `milvus-lite server` on 127.0.0.1.

Each learner runs the course's own `RAG.ingest` of the FAQ, then, at the same moment as the others,
dense, BM25 and hybrid searches through `RAG.retrieve`. Vectors are hash-seeded random unit vectors of
Qwen3-Embedding's 1024 dimensions (no model runs), so the server is what is measured. Scenarios:
`own` (a collection per learner), `shared` (one collection for all) and `rebuild` (one learner's
`ingest --rebuild` of the shared collection while the others search it). Every loop is bounded.
`python -m benchmarks class [--quick | --smoke] [--only own,shared,rebuild]`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from model_server import lite_server

from benchmarks.common import percentiles
from benchmarks.corpus import QUESTIONS
from helpers.config import ROOT, Settings, get_settings
from helpers.embedding import Encoder
from helpers.setup import ModelChoice

DIM = 1024
MODEL_ID = "class-benchmark/hash-seeded-random-1024"
SEARCHES = 20  # per learner: 600 for 30 learners
WAIT_S = 600  # the longest any learner waits for the start signal or the others (bounded loops)
SCENARIOS = ("own", "shared", "rebuild")
PACE_S = 0.05  # between the searches of the learners who watch a rebuild


class HashVectors(Encoder):
    """Unit vectors seeded by each text's hash: the same text always gets the same vector, instantly."""

    model_id, full_dim, dim, max_tokens = MODEL_ID, DIM, DIM, 8192
    instruction_aware = False

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        seeds = [int.from_bytes(hashlib.sha256((prompt + t).encode()).digest()[:8], "little") for t in texts]
        rows = np.stack([np.random.default_rng(s).standard_normal(DIM) for s in seeds]) if texts else None
        if rows is None:
            return np.zeros((0, DIM), dtype=np.float32)
        return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _rag(uri: str, collection: str, settings: Settings):
    from helpers.pipeline import RAG

    choice = ModelChoice("class", MODEL_ID, "none", "class benchmark", "none")
    return RAG(settings.with_overrides(milvus_uri=uri, collection=collection), choice, embedder=HashVectors())


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no start signal ({path}) within {WAIT_S} s")
        time.sleep(0.05)


def learner(uri: str, collection: str, role: str, corpus: str, searches: int, go: Path, done: Path) -> dict:
    """One learner. `ingest`: the course's ingest, then `searches` searches once `go` exists. `search`:
    only the searches, on until `done` exists. `rebuild`: `ingest --rebuild` while the others search."""
    rag = _rag(uri, collection, get_settings(use_dotenv=False))
    out: dict = {"role": role}
    if role == "ingest":
        t = time.perf_counter()
        try:
            out["ingested_rows"] = rag.ingest(corpus, progress=False).rows
        except Exception as exc:  # what the learner would see instead of a ready collection
            out["ingest_error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:240]
        out["ingest_s"] = round(time.perf_counter() - t, 3)
    elif role == "search":
        rag.retrieve(QUESTIONS[0], "dense", 10)  # the index is checked once, before anything changes
    print("ready", flush=True)
    _wait_for(go)
    if role == "rebuild":  # the README's warning: `ingest --rebuild` on a collection the others search
        time.sleep(0.5)  # the others are searching by now
        t = time.perf_counter()
        out["ingested_rows"] = rag.ingest(corpus, rebuild=True, progress=False).rows
        out["ingest_s"] = round(time.perf_counter() - t, 3)
        done.touch()
        out |= {"outcomes": {}, "errors": [], "latency_ms": {}, "bad_s": []}
    else:
        out |= _searches(rag, searches, done if role == "search" else None)
    try:
        out["rows_after"] = rag.store.count()
    except Exception as exc:
        out["rows_after"] = f"{type(exc).__name__}"
    rag.close()
    return out


def _searches(rag, searches: int, until: Path | None) -> dict:
    """`searches` searches (and on until `until` exists, bounded), counting what came back."""
    out: dict = {"outcomes": Counter(), "errors": [], "latency_ms": {}, "bad_s": []}
    deadline, i, start = time.monotonic() + WAIT_S, 0, time.perf_counter()
    while (i < searches or (until is not None and not until.exists())) and time.monotonic() < deadline:
        mode, question = ("dense", "bm25", "hybrid")[i % 3], QUESTIONS[i % len(QUESTIONS)]
        t = time.perf_counter()
        try:
            outcome = "ok" if rag.retrieve(question, mode, 10) else "empty"
        except Exception as exc:  # what a learner would see: recorded, never fatal
            outcome = "error"
            out["errors"].append(f"{mode}: {type(exc).__name__}: {' '.join(str(exc).split())}"[:240])
        out["outcomes"][outcome] += 1
        out["latency_ms"].setdefault(mode, []).append(round((time.perf_counter() - t) * 1000, 2))
        if outcome != "ok":
            out["bad_s"].append(round(t - start, 3))
        i += 1
        if until is not None:
            time.sleep(PACE_S)  # a watcher searches about as often as a learner clicking through a notebook
    return out


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "MILVUS_URI": "", "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "benchmarks.classroom", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env=env, cwd=ROOT)


def _exact_rows(uri: str, collection: str, ids: set[str]) -> bool:
    """True when the collection holds exactly `ids`: none missing, none extra, none twice."""
    from helpers.store import connect

    client = connect(uri)
    try:
        rows = client.query(collection, filter="", output_fields=["id"], limit=len(ids) + 100)
    finally:
        client.close()
    found = [r["id"] for r in rows]
    return len(found) == len(set(found)) and set(found) == ids


def scenario(name: str, n: int, corpus: str, ids: set[str], searches: int, tmp: Path) -> dict:
    """Run one scenario with `n` learners on a fresh server; the figures and what each learner saw."""
    go, done = tmp / f"{name}{n}.go", tmp / f"{name}{n}.done"
    with lite_server(tmp / f"data-{name}{n}") as uri:
        if name == "rebuild":  # the shared collection exists before the class starts searching it
            _rag(uri, "shared", get_settings(use_dotenv=False)).ingest(corpus, progress=False)
        roles = {
            "own": [("ingest", f"learner_{i:02d}") for i in range(n)],
            "shared": [("ingest", "shared")] * n,
            "rebuild": [("rebuild", "shared")] + [("search", "shared")] * (n - 1),
        }[name]
        procs = []
        for i, (role, collection) in enumerate(roles):
            args = [uri, collection, role, corpus, str(searches), str(go), str(done)]
            procs.append(_spawn(args, tmp / f"{name}{n}-{i}.log"))
        try:
            for i, proc in enumerate(procs):
                if proc.stdout.readline().strip() != "ready":  # bounded: a learner that dies closes its pipe
                    proc.wait(timeout=30)
                    raise RuntimeError(
                        f"learner {i} failed: {(tmp / f'{name}{n}-{i}.log').read_text()[-800:]}"
                    )
            t = time.perf_counter()
            go.touch()
            reports = [
                json.loads(proc.communicate(timeout=WAIT_S)[0].strip().splitlines()[-1]) for proc in procs
            ]
            wall = time.perf_counter() - t
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        rows_right = sum(_exact_rows(uri, c, ids) for c in sorted({c for _, c in roles}))
    return summarise(name, n, reports, wall, rows_right, len({c for _, c in roles}))


def summarise(name: str, n: int, reports: list[dict], wall: float, rows_right: int, collections: int) -> dict:
    """Errors, latency percentiles per search type, outcomes, and whether every collection is whole."""
    latency = {
        m: [x for r in reports for x in r["latency_ms"].get(m, [])] for m in ("dense", "bm25", "hybrid")
    }
    outcomes = sum((Counter(r["outcomes"]) for r in reports), Counter())
    ingests = [r["ingest_s"] for r in reports if "ingest_s" in r]
    return {
        "learners": n,
        "searches": sum(outcomes.values()),
        "errors": outcomes["error"],
        "empty_results": outcomes["empty"],
        "latency_ms": {m: percentiles(v) for m, v in latency.items() if v},
        "ingest_s": percentiles(ingests) if ingests else {},
        "ingest_errors": sorted(r["ingest_error"] for r in reports if "ingest_error" in r),
        "collections_exactly_right": f"{rows_right}/{collections}",
        "rows_seen_after": sorted({str(r["rows_after"]) for r in reports}),
        "first_errors": sorted({e for r in reports for e in r["errors"]})[:8],
        # from a watcher's first wrong answer (an error or no rows) to its last: how long the class was hit
        "wrong_for_s": max((r["bad_s"][-1] - r["bad_s"][0] for r in reports if r["bad_s"]), default=0.0),
        "wall_s": round(wall, 1),
    }


def run(settings, device: str, quick: bool, only: str = "", smoke: bool = False) -> dict:
    """own, shared and rebuild for N = 1, 10, 30 (rebuild from 2; `quick`: 1, 10; `smoke`: 4, 6 searches)."""
    from helpers.chunking import chunk_documents, load_corpus

    loaded = load_corpus("milvus-faq", settings)
    corpus = "milvus-faq" if loaded.name == "milvus-faq" else "sample"
    ids = {p.id for p in chunk_documents(loaded.documents, "markdown")}
    sizes = (4,) if smoke else (1, 10) if quick else (1, 10, 30)
    searches = 6 if smoke else SEARCHES
    wanted = [s for s in SCENARIOS if not only or s in only.split(",")]
    results: dict = {name: {} for name in wanted}
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        for name in wanted:
            for n in sizes:
                if name == "rebuild" and n < 2:
                    continue  # one learner rebuilding alone sees nothing odd
                results[name][str(n)] = scenario(name, n, corpus, ids, searches, Path(tmp))
    return {
        "corpus": loaded.name,
        "passages": len(ids),
        "vectors": f"{DIM}-d, {MODEL_ID}",
        "results": results,
    }


if __name__ == "__main__":  # one learner, started by `scenario`
    uri, collection, role, corpus, searches, go, done = sys.argv[1:8]
    print(json.dumps(learner(uri, collection, role, corpus, int(searches), Path(go), Path(done))))
