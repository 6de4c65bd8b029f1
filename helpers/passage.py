"""The one record a passage travels in, from the chunker to the cited answer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Passage:
    """A passage: chunked (id, text, source, title), then retrieved (`score`) and reranked (`rerank_score`).

    Keyword-only, so a title can never land in the text's place unnoticed.
    """

    id: str
    text: str
    source: str = ""
    title: str = ""
    score: float | None = None  # under the retrieval that found it: cosine, BM25 or RRF
    rerank_score: float | None = None  # the reranker's P("yes")


def stable_id(source: str, text: str) -> str:
    """A 16-hex-digit id derived from the passage's source and content (same input, same id)."""
    return hashlib.sha256(f"{source}\x00{text}".encode()).hexdigest()[:16]
