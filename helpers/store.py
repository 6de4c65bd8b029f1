"""Milvus (notebook 03) through `pymilvus.MilvusClient`: a Milvus Lite file by default, or any server.

One collection holds the passages, a dense vector and a BM25 sparse vector Milvus computes from the text;
it records the embedding model and dimension that built it, so another model's queries fail loudly.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from helpers.chunking import Passage
from helpers.config import DATA_DIR, DOTENV_LOGGER, SERVER_SCHEMES, collect_logs

if TYPE_CHECKING:
    from pymilvus import MilvusClient

MODEL_PROPERTY, DIM_PROPERTY = "rag.embedding_model", "rag.dim"
SEARCH_MODES = ("dense", "bm25", "hybrid")
TEXT_MAX_CHARS = 16384  # VARCHAR max_length counts bytes in Milvus: leave room for multi-byte text
HNSW_PARAMS = {"M": 16, "efConstruction": 200}
MAX_TOP_K = 16384  # Milvus servers reject a search limit above this; larger requests are capped
FIELDS = ["text", "source", "title"]


class StoreError(RuntimeError):
    """A Milvus operation failed in a way the user can fix; the message says how."""


def import_pymilvus():
    """Import pymilvus, which rejects a file path in MILVUS_URI (hidden meanwhile) and reads `.env`."""
    from unittest.mock import patch

    uri = os.environ.get("MILVUS_URI", "")
    url_only = {"MILVUS_URI": uri if uri.startswith(("http://", "https://")) else ""}
    with patch.dict(os.environ, url_only), collect_logs(DOTENV_LOGGER):  # the environment is restored after
        import pymilvus
    return pymilvus


def check_lite_file(uri: str) -> None:
    """Create the Lite file's folder and check Milvus Lite can write there; else one `StoreError` line."""
    path = Path(uri).expanduser()

    def unusable(problem: str) -> StoreError:
        default = DATA_DIR / "milvus_rag.db"
        return StoreError(
            f"Cannot use the Milvus Lite file {uri} (RAG_LITE_FILE): {problem}. Set RAG_LITE_FILE to a .db "
            f"file in a folder you can write, or unset it to use the default {default}."
        )

    if path.suffix != ".db":
        raise unusable("Milvus Lite files must end in .db")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        in_the_way = next((p for p in (*path.parent.parents, path.parent) if p.is_file()), None)
        why = f"{in_the_way} is a file, not a folder" if in_the_way else exc.strerror
        raise unusable(f"its folder {path.parent} cannot be created ({why})") from None
    where = path if path.is_dir() else path.parent  # Milvus Lite keeps its data in a folder of this name
    try:
        tempfile.TemporaryFile(dir=where).close()
    except OSError as exc:
        what = "it" if where == path else f"its folder {where}"
        raise unusable(f"{what} cannot be written ({exc.strerror})") from None


def connect(uri: str, token: str = "", timeout: float = 30.0) -> MilvusClient:
    """Open a `MilvusClient`: a path is a Milvus Lite file, `http(s)://` a Milvus server or Zilliz Cloud."""
    is_server = uri.startswith(SERVER_SCHEMES)
    if not is_server:
        check_lite_file(uri)
    client_class = import_pymilvus().MilvusClient
    with collect_logs("milvus_lite") as records:  # it logs a full traceback when opening a file fails
        try:
            return client_class(uri=uri, token=token or "", timeout=timeout)
        except Exception as exc:  # pymilvus raises MilvusException and plain connection errors alike
            error: BaseException = exc
    cause = next((r.exc_info[1] for r in records if r.exc_info and r.exc_info[1] is not None), None)
    if not is_server and type(cause).__name__ == "DataDirLockedError":
        raise StoreError(
            f"Could not open the Milvus Lite file {uri}: another process holds its lock (a second notebook "
            "kernel, or a `python -m helpers` still running?). A Milvus Lite file serves one process at a "
            "time: close the other process, set RAG_LITE_FILE to another file, or share one index through "
            "a local server: `milvus-lite server --data-dir DIR --host 127.0.0.1 --port 19530` and "
            "MILVUS_URI=http://127.0.0.1:19530."
        ) from None
    error = cause if cause is not None and not is_server else error
    message = " ".join(str(getattr(error, "message", None) or error).split()).rstrip(".")
    where = f"the Milvus server at {uri}" if is_server else f"the Milvus Lite file {uri}"
    hint = "Check that it runs, and the URI and MILVUS_TOKEN." if is_server else "If damaged, move it away."
    raise StoreError(f"Could not connect to {where} ({type(error).__name__}: {message}). {hint}") from None


class MilvusStore:
    """One collection of passages with dense, BM25 and hybrid search."""

    def __init__(self, client: MilvusClient, collection: str):
        self.client = client
        self.collection = collection
        self._loaded = False

    def exists(self) -> bool:
        """True when the collection exists."""
        return bool(self.client.has_collection(self.collection))

    def load(self) -> None:
        """Load the collection into memory (needed after reopening it); cheap when already loaded."""
        if not self._loaded:
            if not self.exists():
                raise StoreError(
                    f"Collection {self.collection!r} does not exist: run `python -m helpers ingest` first."
                )
            self.client.load_collection(self.collection)
            self._loaded = True

    def create(self, dim: int, model_id: str, index_type: str = "HNSW") -> None:
        """Create the collection: schema, BM25 function, dense and sparse indexes; record model and dim."""
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX_CHARS * 4, enable_analyzer=True)
        schema.add_field("source", DataType.VARCHAR, max_length=1024)
        schema.add_field("title", DataType.VARCHAR, max_length=2048)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function("text_bm25", FunctionType.BM25, ["text"], ["sparse"]))
        index = self.client.prepare_index_params()
        build = HNSW_PARAMS if index_type == "HNSW" else {}
        # Nested under "params": Milvus Lite reads build parameters only there (the flat keys of pymilvus's
        # documented form are dropped silently); a Milvus server reads both forms.
        index.add_index("dense", index_type=index_type, metric_type="IP", params={"params": build})
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        properties = {MODEL_PROPERTY: model_id, DIM_PROPERTY: str(dim)}
        try:
            self.client.create_collection(
                self.collection,
                schema=schema,
                index_params=index,
                consistency_level="Strong",
                properties=properties,
            )
        except Exception:
            # Another process (a classmate on a shared server) created it between our check and this call:
            # use theirs; `check_model` then says whether it was built for the same model and dimension.
            if not self.exists():
                raise
        self.load()

    def drop(self) -> None:
        """Delete the collection if it exists."""
        if self.exists():
            self.client.drop_collection(self.collection)
        self._loaded = False

    def check_model(self, model_id: str, dim: int) -> None:
        """Raise `StoreError` (suggesting --rebuild) when the collection was built by another model or dim."""
        props = self.client.describe_collection(self.collection).get("properties", {}) or {}
        name, rebuild = self.collection, "`python -m helpers ingest --rebuild`"
        if MODEL_PROPERTY not in props:
            why = "was not created by this course (no model recorded)"
            raise StoreError(
                f"Collection {name!r} {why}. Use another MILVUS_COLLECTION or re-ingest with {rebuild}."
            )
        built = props[MODEL_PROPERTY], int(props.get(DIM_PROPERTY, 0))
        if built != (model_id, dim):
            why = f"was built with {built[0]} at dim {built[1]}, but the query uses {model_id} at dim {dim}"
            fix = f"Vectors from different models are not comparable: re-ingest with {rebuild}"
            raise StoreError(f"Collection {name!r} {why}. {fix} (or pick the matching model).")

    def count(self) -> int:
        """Number of rows (a strongly consistent count(*) query)."""
        self.load()
        rows = self.client.query(self.collection, output_fields=["count(*)"], consistency_level="Strong")
        return int(rows[0]["count(*)"])

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of `ids` are already stored."""
        self.load()
        batches = (list(ids[i : i + 500]) for i in range(0, len(ids), 500))
        return {r["id"] for batch in batches for r in self.client.get(self.collection, ids=batch)}

    def upsert(self, passages: Sequence[Passage], vectors: np.ndarray, batch_size: int = 256) -> int:
        """Insert or replace rows by id, in batches; running it twice leaves the same rows."""
        if len(passages) != len(vectors):
            raise ValueError(f"{len(passages)} passages but {len(vectors)} vectors.")
        self.load()
        rows = [
            {"id": p.id, "text": p.text[:TEXT_MAX_CHARS], "source": p.source[:1024], "title": p.title[:512]}
            | {"dense": np.asarray(v, dtype=np.float32).tolist()}
            for p, v in zip(passages, vectors, strict=True)
        ]
        batches = (rows[i : i + batch_size] for i in range(0, len(rows), batch_size))
        return sum(int(self.client.upsert(self.collection, batch)["upsert_count"]) for batch in batches)

    def delete_missing(self, keep_ids: set[str]) -> int:
        """Remove rows whose id is not in `keep_ids` (passages that left the corpus); return how many."""
        if self.count() == len(self.existing_ids(sorted(keep_ids))):
            return 0  # every stored row is still wanted: skip the full scan
        # Milvus Lite gives an iterator no MVCC timestamp, and pymilvus logs a harmless warning about it.
        with collect_logs("pymilvus"):
            it = self.client.query_iterator(self.collection, batch_size=1000, filter="", output_fields=["id"])
        stale: list[str] = []
        try:
            while rows := it.next():
                stale += [r["id"] for r in rows if r["id"] not in keep_ids]
        finally:
            it.close()
        for start in range(0, len(stale), 500):
            self.client.delete(self.collection, ids=stale[start : start + 500])
        return len(stale)

    def search(
        self, mode: str, vector: np.ndarray | None, text: str, limit: int = 10, rrf_k: int = 60
    ) -> list[Passage]:
        """`dense` (inner product), `bm25`, or `hybrid`: both fused by RRF, sum of 1/(rrf_k + rank)."""
        from pymilvus import AnnSearchRequest, RRFRanker

        if mode not in SEARCH_MODES:
            raise ValueError(f"Unknown search mode {mode!r}: use one of {', '.join(SEARCH_MODES)}.")
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}.")
        self.load()
        limit = min(limit, MAX_TOP_K)  # above the collection size every row comes back anyway
        dense = {"metric_type": "IP", "params": {"ef": max(64, limit)}}
        query = [np.asarray(vector, dtype=np.float32).tolist()] if mode != "bm25" else None
        if mode == "hybrid":
            requests = [
                AnnSearchRequest(query, "dense", dense, limit=limit),
                AnnSearchRequest([text], "sparse", {"metric_type": "BM25"}, limit=limit),
            ]
            found = self.client.hybrid_search(
                self.collection, requests, ranker=RRFRanker(rrf_k), limit=limit, output_fields=FIELDS
            )
        else:
            field, params = ("dense", dense) if mode == "dense" else ("sparse", {"metric_type": "BM25"})
            kwargs = {"limit": limit, "output_fields": FIELDS, "search_params": params, "anns_field": field}
            found = self.client.search(self.collection, query or [text], **kwargs)
        # Milvus Lite reports BM25 as a negative distance, a server as a positive score: report the score.
        score = abs if mode == "bm25" else float
        entities = [(h, h.get("entity", h)) for h in found[0]]
        return [
            Passage(id=h["id"], **{f: e[f] for f in FIELDS}, score=score(h["distance"])) for h, e in entities
        ]
