"""Embeddings kept on disk, so that notebooks 03, 05 and 06 (and every re-run) reuse what 02 embedded.

A vector is determined by the model (its id, hub revision, dtype, token limit and a fingerprint of its
weights), the prompt, the Matryoshka dimension and the text: the key hashes all of them, so a change to any
one misses. Stored with SQLite from the standard library: raw float32 bytes (no pickle), safe for several
processes at once (a notebook kernel and the CLI), nothing new to install.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

FILE_NAME = "embeddings.sqlite"
FINGERPRINT_VALUES = 4096  # the first values of every weight tensor: any other checkpoint differs in them


def weights_fingerprint(model) -> str:
    """A short hash of a torch model's weights (the first values of each parameter tensor, in order)."""
    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        digest.update(name.encode())
        digest.update(param.detach().reshape(-1)[:FINGERPRINT_VALUES].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


class VectorCache:
    """float32 vectors by key, in one SQLite file; `get` and `put` work on many keys at once."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        with self._db:
            self._db.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)"
            )

    @staticmethod
    def key(model: str, prompt: str, dim: int, text: str) -> str:
        """The key of one text's vector: a hash of everything that determines it."""
        return hashlib.sha256(json.dumps([model, prompt, dim, text]).encode()).hexdigest()

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors among `keys` (missing keys are absent from the result)."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            part = list(keys[start : start + 500])
            marks = ",".join("?" * len(part))
            rows = self._db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", part)
            found |= {k: np.frombuffer(v, dtype=np.float32) for k, v in rows}
        return found

    def put(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store one vector per key (a key stored before is replaced: same inputs, same vector)."""
        rows = [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in zip(keys, vectors, strict=True)]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        """Close the file (the cache works again only through a new `VectorCache`)."""
        self._db.close()


def open_cache(cache_dir: str | Path, enabled: bool = True) -> VectorCache | None:
    """The course's cache in `cache_dir` (RAG_CACHE_DIR), or None when RAG_EMBED_CACHE=0 turns it off."""
    return VectorCache(Path(cache_dir) / FILE_NAME) if enabled else None
