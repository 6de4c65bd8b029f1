"""Embeddings kept on disk, so that notebooks 03 to 07 (and every re-run) reuse what 02 embedded.

The key hashes everything that determines a vector (model id, revision, dtype, token limit, a fingerprint of
the weights; prompt; Matryoshka dimension; text). SQLite from the standard library: raw float32, no pickle.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np


def model_identity(model, model_id: str, revision: str | None) -> str:
    """What fixes a model's vectors: id, revision, dtype, token limit, first 4096 values of each weight."""
    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        digest.update(name.encode() + param.detach().reshape(-1)[:4096].float().cpu().numpy().tobytes())
    dtype = next(model.parameters()).dtype
    return f"{model_id}@{revision or '-'}|{dtype}|{model.max_seq_length}|{digest.hexdigest()[:16]}"


class VectorCache:
    """float32 vectors by key in one SQLite file (WAL: several processes at once)."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        with self.db:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")

    @staticmethod
    def key(model: str, prompt: str, dim: int, text: str) -> str:
        """The key of one text's vector: a hash of everything that determines it."""
        return hashlib.sha256(json.dumps([model, prompt, dim, text]).encode()).hexdigest()

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        """The stored vectors among `keys` (missing keys are absent)."""
        rows = (
            self.db.execute(
                f"SELECT * FROM vectors WHERE key IN ({','.join('?' * len(keys[i : i + 500]))})",
                keys[i : i + 500],
            )
            for i in range(0, len(keys), 500)
        )
        return {k: np.frombuffer(v, dtype=np.float32) for part in rows for k, v in part}

    def put(self, keys: list[str], vectors: np.ndarray) -> None:
        """Store one vector per key (the same inputs give the same vector: a repeated key is replaced)."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                [(k, np.asarray(v, np.float32).tobytes()) for k, v in zip(keys, vectors, strict=True)],
            )

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
