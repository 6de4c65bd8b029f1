"""Milvus Lite at 1024 dimensions: insert rate, FLAT vs HNSW latency and recall, size, reopen time."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from model_server import lite_server

from benchmarks.common import percentiles
from helpers.store import HNSW_PARAMS, import_pymilvus

DIM = 1024
EF_CANDIDATES = (16, 32, 64, 128, 256, 512)
SMOKE_ROWS, SMOKE_QUERIES = 1000, 10


def make_data(n: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors with cluster structure (like embeddings), and queries near stored points."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(max(8, n // 500), DIM)).astype(np.float32)
    data = centers[rng.integers(len(centers), size=n)] + 0.6 * rng.normal(size=(n, DIM)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    queries = data[rng.integers(n, size=n_queries)] + 0.3 * rng.normal(size=(n_queries, DIM)).astype(
        np.float32
    )
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return data, queries


def exact_top10(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Ground truth by brute force (inner product on unit vectors)."""
    return np.argsort(-(queries @ data.T), axis=1)[:, :10]


def _collection(client, name: str, index_type: str) -> None:
    pymilvus = import_pymilvus()
    schema = pymilvus.MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", pymilvus.DataType.INT64, is_primary=True)
    schema.add_field("v", pymilvus.DataType.FLOAT_VECTOR, dim=DIM)
    ip = client.prepare_index_params()
    build = HNSW_PARAMS if index_type == "HNSW" else {}
    ip.add_index(
        "v",
        index_type=index_type,
        metric_type="IP",
        params={"params": build},  # the form Lite reads
    )
    client.create_collection(name, schema=schema, index_params=ip, consistency_level="Strong")


def _search_all(client, name, queries, ef: int | None) -> tuple[list[float], np.ndarray]:
    params = {"metric_type": "IP", "params": {"ef": ef} if ef else {}}
    latencies, found = [], []
    for q in queries:
        t = time.perf_counter()
        res = client.search(name, data=[q.tolist()], anns_field="v", limit=10, search_params=params)
        latencies.append((time.perf_counter() - t) * 1000)
        found.append([h["id"] for h in res[0]])
    return latencies, np.asarray(found)


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))


def bench_index(uri_or_path: str, data, queries, truth, index_type: str, via: str) -> dict:
    """Insert, index, search and (for a Lite file) reopen one collection."""
    pymilvus = import_pymilvus()
    client = pymilvus.MilvusClient(uri_or_path)
    name = f"bench_{index_type.lower()}"
    if client.has_collection(name):
        client.drop_collection(name)
    _collection(client, name, index_type)
    t = time.perf_counter()
    for start in range(0, len(data), 2000):
        rows = [{"id": start + i, "v": v.tolist()} for i, v in enumerate(data[start : start + 2000])]
        client.insert(name, rows)
    client.flush(name)
    insert_s = time.perf_counter() - t
    t = time.perf_counter()
    client.load_collection(name)
    _search_all(client, name, queries[:1], 64 if index_type == "HNSW" else None)  # waits for the index
    ready_s = time.perf_counter() - t
    out = {
        "via": via,
        "rows": len(data),
        "insert_rows_per_s": round(len(data) / insert_s, 1),
        "load_and_first_query_s": round(ready_s, 2),
    }
    if index_type == "HNSW":
        for ef in EF_CANDIDATES:  # the smallest ef that reaches recall@10 >= 0.95
            latencies, found = _search_all(client, name, queries, ef)
            recall = _recall(found, truth)
            if recall >= 0.95 or ef == EF_CANDIDATES[-1]:
                break
        out.update({"ef": ef, "M": HNSW_PARAMS["M"], "efConstruction": HNSW_PARAMS["efConstruction"]})
    else:
        latencies, found = _search_all(client, name, queries, None)
        recall = _recall(found, truth)
    out.update({"recall@10": round(recall, 4), "latency_ms": percentiles(latencies)})
    client.close()
    if via == "lite file":
        path = Path(uri_or_path)
        out["disk_mb"] = round(
            sum(f.stat().st_size for f in path.parent.rglob("*") if f.is_file()) / 2**20, 1
        )
        t = time.perf_counter()
        again = pymilvus.MilvusClient(uri_or_path)
        again.load_collection(name)
        again.search(name, data=[queries[0].tolist()], anns_field="v", limit=10)
        out["reopen_s"] = round(time.perf_counter() - t, 2)
        again.close()
    return out


def run(settings, device: str, quick: bool, only: str = "", smoke: bool = False) -> dict:
    """10k rows (and 100k unless --quick), FLAT and HNSW, Lite file and Lite gRPC server.

    `smoke`: SMOKE_ROWS rows and SMOKE_QUERIES queries.
    """
    sizes = (SMOKE_ROWS,) if smoke else (10_000,) if quick else (10_000, 100_000)
    n_queries = SMOKE_QUERIES if smoke else 100 if quick else 200
    results = {}
    for n in sizes:
        data, queries = make_data(n, n_queries)
        truth = exact_top10(data, queries)
        rows = {}
        for index_type in ("FLAT", "HNSW"):
            with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:  # Lite may still flush
                rows[f"{index_type} (lite file)"] = bench_index(
                    str(Path(tmp) / "bench.db"), data, queries, truth, index_type, "lite file"
                )
        if n == sizes[0]:
            with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp, lite_server(tmp) as uri:
                rows["HNSW (lite gRPC server)"] = bench_index(
                    uri, data, queries, truth, "HNSW", "gRPC server"
                )
        results[str(n)] = rows
    return {"dim": DIM, "queries": n_queries, "results": results}
