"""Milvus through `pymilvus.MilvusClient`: a Milvus Lite file by default, or any server by URI and token.

The store takes vectors, never a model. One collection holds the passages with their text (analysed,
so Milvus can compute BM25 itself through a BM25 `Function`), source, title, a dense vector and
the BM25 sparse vector. It records which embedding model and dimension built it, so that searching
with another model fails loudly instead of returning nonsense.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from helpers.config import DATA_DIR, DOTENV_LOGGER, SERVER_SCHEMES, collect_logs
from helpers.passage import Passage
from helpers.servers import ServerError, free_port, listening, running

if TYPE_CHECKING:
    from pymilvus import MilvusClient

MODEL_PROPERTY = "rag.embedding_model"
DIM_PROPERTY = "rag.dim"
SEARCH_MODES = ("dense", "bm25", "hybrid")
TEXT_MAX_CHARS = 16384  # VARCHAR max_length counts bytes in Milvus: leave room for multi-byte text
HNSW_PARAMS = {"M": 16, "efConstruction": 200}
MAX_TOP_K = 16384  # Milvus servers reject a search limit above this; larger requests are capped


class StoreError(RuntimeError):
    """A Milvus operation failed in a way the user can fix; the message says how."""


def import_pymilvus():
    """Import pymilvus even when an older setting left a Milvus Lite file path in MILVUS_URI.

    pymilvus reads MILVUS_URI (and a `.env` it finds) at import time and rejects anything but an
    http(s) URL; the course still accepts such a path there (with a warning; RAG_LITE_FILE is the
    variable for it now). Hide it for the duration of the import.
    """
    saved = os.environ.get("MILVUS_URI")
    os.environ["MILVUS_URI"] = saved if saved and saved.startswith(("http://", "https://")) else ""
    try:
        # `read_dotenv` already named the file and the lines of `.env` that do not parse: pymilvus's
        # reading of the same file would print python-dotenv's bare "could not parse" lines again.
        with collect_logs(DOTENV_LOGGER):
            import pymilvus
    finally:
        if saved is None:
            del os.environ["MILVUS_URI"]
        else:
            os.environ["MILVUS_URI"] = saved
    return pymilvus


def _lite_failure(records: list[logging.LogRecord]) -> BaseException | None:
    """The exception Milvus Lite logged while failing to open its file, if any."""
    for record in records:
        if record.exc_info and record.exc_info[1] is not None:
            return record.exc_info[1]
    return None


def _reason(exc: BaseException) -> str:
    """An exception's own message, once: pymilvus's exceptions put their repr inside their str."""
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {' '.join(str(message).split()).rstrip('.')}"


def _why_no_folder(folder: Path, exc: OSError) -> str:
    """Why `folder` could not be created: a file in the way, or what the operating system said."""
    for path in (*reversed(folder.parents), folder):
        if path.exists() and not path.is_dir():
            return f"{path} is a file, not a folder"
    return exc.strerror or type(exc).__name__


def _unusable_lite_file(uri: str, problem: str) -> StoreError:
    return StoreError(
        f"Cannot use the Milvus Lite file {uri} (RAG_LITE_FILE): {problem}. Set RAG_LITE_FILE to a .db "
        f"file in a folder you can write, or unset it to use the default {DATA_DIR / 'milvus_rag.db'}."
    )


def check_lite_file(uri: str) -> None:
    """Create the Lite file's folder and check that Milvus Lite can write where it will; `StoreError`
    names the fix. (Where it cannot, opening fails with a misleading error or a traceback.)"""
    path = Path(uri).expanduser()
    if path.suffix != ".db":
        raise _unusable_lite_file(uri, "Milvus Lite files must end in .db")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = _why_no_folder(folder, exc)
        raise _unusable_lite_file(uri, f"its folder {folder} cannot be created ({why})") from None
    # Milvus Lite keeps its data in a folder named like the file: in it once it exists, else beside it.
    where = path if path.is_dir() else folder
    try:
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as exc:
        what = "it" if where == path else f"its folder {folder}"
        raise _unusable_lite_file(
            uri, f"{what} cannot be written ({exc.strerror or type(exc).__name__})"
        ) from None
    if path.is_file() and not os.access(path, os.W_OK):
        raise _unusable_lite_file(uri, "it is a read-only file")


def connect(uri: str, token: str = "", timeout: float = 30.0) -> MilvusClient:
    """Open a `MilvusClient`: a path is a Milvus Lite file, `http(s)://` a Milvus server or Zilliz Cloud."""
    is_server = uri.startswith(SERVER_SCHEMES)
    if not is_server:
        check_lite_file(uri)
    MilvusClient = import_pymilvus().MilvusClient
    with collect_logs("milvus_lite") as records:  # it logs a full traceback when opening a file fails
        try:
            return MilvusClient(uri=uri, token=token or "", timeout=timeout)
        except Exception as exc:  # pymilvus raises MilvusException and plain connection errors alike
            error: BaseException = exc
    cause = None if is_server else _lite_failure(records)
    if type(cause).__name__ == "DataDirLockedError":
        raise StoreError(
            f"Could not open the Milvus Lite file {uri}: another process holds its lock (a second "
            "notebook kernel, or a `python -m helpers` still running?). A Milvus Lite file serves one "
            "process at a time. Close the other process, or set RAG_LITE_FILE to another file, or share "
            "one index between processes with a local server: run `milvus-lite server --data-dir "
            "DIR --host 127.0.0.1 --port 19530` and set MILVUS_URI=http://127.0.0.1:19530."
        ) from None
    if cause is not None:
        error = cause
    where = f"the Milvus server at {uri}" if is_server else f"the Milvus Lite file {uri}"
    hint = (
        "Check that the server runs and the URI/port and MILVUS_TOKEN are right."
        if is_server
        else "If the file is damaged, move it away and ingest again; if another process holds it, close "
        "that process, use another RAG_LITE_FILE, or run a server (milvus-lite server --host 127.0.0.1) "
        "and set MILVUS_URI to it."
    )
    raise StoreError(f"Could not connect to {where} ({_reason(error)}). {hint}") from None


class MilvusStore:
    """One collection of passages with dense and BM25 search."""

    def __init__(self, client: MilvusClient, collection: str):
        self.client = client
        self.collection = collection
        self._loaded = False

    def load(self) -> None:
        """Load the collection into memory (needed after reopening it); cheap when already loaded."""
        if not self._loaded:
            if not self.exists():
                raise StoreError(
                    f"Collection {self.collection!r} does not exist: run `python -m helpers ingest` first."
                )
            self.client.load_collection(self.collection)
            self._loaded = True

    # --- schema ----------------------------------------------------------------------------------

    def exists(self) -> bool:
        """True when the collection exists."""
        return bool(self.client.has_collection(self.collection))

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
        schema.add_function(
            Function(
                name="text_bm25",
                function_type=FunctionType.BM25,
                input_field_names=["text"],
                output_field_names=["sparse"],
            )
        )
        index = self.client.prepare_index_params()
        build = HNSW_PARAMS if index_type == "HNSW" else {}
        # Nested under "params": Milvus Lite reads build parameters only there (flat keys, pymilvus's
        # documented form, are dropped silently); a Milvus server reads both forms.
        index.add_index("dense", index_type=index_type, metric_type="IP", params={"params": build})
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        self.client.create_collection(
            self.collection,
            schema=schema,
            index_params=index,
            consistency_level="Strong",
            properties={MODEL_PROPERTY: model_id, DIM_PROPERTY: str(dim)},
        )
        self.load()

    def drop(self) -> None:
        """Delete the collection if it exists."""
        if self.exists():
            self.client.drop_collection(self.collection)
        self._loaded = False

    def built_with(self) -> tuple[str, int] | None:
        """(embedding model id, dimension) recorded at creation, or None for a foreign collection."""
        props = self.client.describe_collection(self.collection).get("properties", {}) or {}
        if MODEL_PROPERTY not in props:
            return None
        return props[MODEL_PROPERTY], int(props.get(DIM_PROPERTY, 0))

    def check_model(self, model_id: str, dim: int) -> None:
        """Raise `StoreError` (suggesting --rebuild) when the collection was built by another model or dim."""
        built = self.built_with()
        if built is None:
            raise StoreError(
                f"Collection {self.collection!r} was not created by this course (no model recorded). "
                "Use another MILVUS_COLLECTION or re-ingest with --rebuild."
            )
        if built != (model_id, dim):
            raise StoreError(
                f"Collection {self.collection!r} was built with {built[0]} at dim {built[1]}, but the query "
                f"uses {model_id} at dim {dim}. Vectors from different models are not comparable: "
                "re-ingest with `python -m helpers ingest --rebuild` (or pick the matching model)."
            )

    # --- data ------------------------------------------------------------------------------------

    def count(self) -> int:
        """Number of rows (a strongly consistent count(*) query)."""
        self.load()
        res = self.client.query(
            self.collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
        )
        return int(res[0]["count(*)"])

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of `ids` are already stored."""
        self.load()
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            rows = self.client.get(self.collection, ids=part, output_fields=["id"])
            found.update(r["id"] for r in rows)
        return found

    def upsert(self, passages: Sequence[Passage], vectors: np.ndarray, batch_size: int = 256) -> int:
        """Insert or replace rows by id, in batches; running it twice leaves the same rows."""
        if len(passages) != len(vectors):
            raise ValueError(f"{len(passages)} passages but {len(vectors)} vectors.")
        self.load()
        total = 0
        for start in range(0, len(passages), batch_size):
            rows = [
                {
                    "id": c.id,
                    "text": c.text[:TEXT_MAX_CHARS],
                    "source": c.source[:1024],
                    "title": c.title[:512],
                    "dense": v.astype(np.float32).tolist(),
                }
                for c, v in zip(
                    passages[start : start + batch_size], vectors[start : start + batch_size], strict=True
                )
            ]
            total += int(self.client.upsert(self.collection, rows)["upsert_count"])
        return total

    def delete_missing(self, keep_ids: set[str]) -> int:
        """Remove rows whose id is not in `keep_ids` (passages that left the corpus); return how many."""
        if self.count() == len(self.existing_ids(sorted(keep_ids))):
            return 0  # every stored row is still wanted: skip the full scan
        stale: list[str] = []
        for batch in self._iterate_ids():
            stale += [i for i in batch if i not in keep_ids]
        for start in range(0, len(stale), 500):
            self.client.delete(self.collection, ids=stale[start : start + 500])
        return len(stale)

    def _iterate_ids(self, batch: int = 1000):
        # Milvus Lite gives an iterator no MVCC timestamp, and pymilvus logs a harmless warning to stderr.
        log = logging.getLogger("pymilvus")
        level = log.level
        log.setLevel(logging.ERROR)
        try:
            it = self.client.query_iterator(
                self.collection, batch_size=batch, filter="", output_fields=["id"]
            )
        finally:
            log.setLevel(level)
        try:
            while rows := it.next():
                yield [r["id"] for r in rows]
        finally:
            it.close()

    # --- search ----------------------------------------------------------------------------------

    def _hits(self, result) -> list[Passage]:
        hits = []
        for h in result[0]:
            entity = h.get("entity", h)
            hits.append(
                Passage(
                    id=h["id"],
                    text=entity["text"],
                    source=entity["source"],
                    title=entity["title"],
                    score=float(h["distance"]),
                )
            )
        return hits

    def search_dense(self, query_vector: np.ndarray, limit: int = 10) -> list[Passage]:
        """Nearest passages by inner product (= cosine on unit vectors)."""
        self.load()
        res = self.client.search(
            self.collection,
            data=[np.asarray(query_vector, dtype=np.float32).tolist()],
            anns_field="dense",
            limit=limit,
            output_fields=["text", "source", "title"],
            search_params={"metric_type": "IP", "params": {"ef": max(64, limit)}},
        )
        return self._hits(res)

    def search_bm25(self, query_text: str, limit: int = 10) -> list[Passage]:
        """Keyword search: Milvus computes BM25 from the analysed `text` field."""
        self.load()
        res = self.client.search(
            self.collection,
            data=[query_text],
            anns_field="sparse",
            limit=limit,
            output_fields=["text", "source", "title"],
            search_params={"metric_type": "BM25"},
        )
        hits = self._hits(res)
        # Milvus Lite reports BM25 as a negative distance, a server as a positive score: report the score.
        return [replace(h, score=abs(h.score)) for h in hits]

    def search_hybrid(
        self, query_vector: np.ndarray, query_text: str, limit: int = 10, k: int = 60
    ) -> list[Passage]:
        """Dense and BM25 result lists fused by reciprocal rank fusion (score = sum of 1/(k + rank))."""
        self.load()
        from pymilvus import AnnSearchRequest, RRFRanker

        dense = AnnSearchRequest(
            [np.asarray(query_vector, dtype=np.float32).tolist()],
            "dense",
            {"metric_type": "IP", "params": {"ef": max(64, limit)}},
            limit=limit,
        )
        sparse = AnnSearchRequest([query_text], "sparse", {"metric_type": "BM25"}, limit=limit)
        res = self.client.hybrid_search(
            self.collection,
            [dense, sparse],
            ranker=RRFRanker(k),
            limit=limit,
            output_fields=["text", "source", "title"],
        )
        return self._hits(res)

    def search(
        self, mode: str, query_vector: np.ndarray | None, query_text: str, limit: int = 10
    ) -> list[Passage]:
        """Dispatch to `dense`, `bm25` or `hybrid` search."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}.")
        limit = min(limit, MAX_TOP_K)  # above the collection size every row comes back anyway
        if mode == "dense":
            return self.search_dense(query_vector, limit)
        if mode == "bm25":
            return self.search_bm25(query_text, limit)
        if mode == "hybrid":
            return self.search_hybrid(query_vector, query_text, limit)
        raise ValueError(f"Unknown search mode {mode!r}: use one of {', '.join(SEARCH_MODES)}.")


@contextmanager
def lite_server(data_dir: str | Path, port: int | None = None, timeout: float = 60.0) -> Iterator[str]:
    """Run `milvus-lite server` on 127.0.0.1 (never another interface) and yield its `http://` URI.

    The same gRPC protocol as Milvus Standalone, so everything that works against this URI works
    against a real server. The server is stopped when the block exits.
    """
    port = port or free_port()
    exe = shutil.which("milvus-lite", path=str(Path(sys.executable).parent)) or shutil.which("milvus-lite")
    if exe is None:
        raise StoreError("The `milvus-lite` command is missing: pip install 'pymilvus[milvus-lite]'.")
    cmd = [exe, "server", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "MILVUS_URI": ""}  # the server imports pymilvus, which rejects a file path there
    try:
        with running("milvus-lite server", cmd, env, listening(port), timeout):
            yield f"http://127.0.0.1:{port}"
    except ServerError as exc:
        raise StoreError(str(exc)) from None
