"""Dense embeddings with sentence-transformers: documents as they are, queries with an instruction.

Qwen3-Embedding is instruction-aware: a query is embedded as `Instruct: {task}\\nQuery:{query}` while
documents get no prefix. Output vectors are L2-normalised, so inner product equals cosine similarity,
and can be cut to a Matryoshka dimension (truncate, then re-normalise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from helpers.config import DEFAULT_QUERY_TASK

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def query_prompt(task: str | None = None) -> str:
    """The Qwen3-Embedding query prefix for a task description (the default task when None)."""
    return f"Instruct: {task or DEFAULT_QUERY_TASK}\nQuery:"


def truncate_normalize(vectors: np.ndarray, dim: int | None = None) -> np.ndarray:
    """Keep the first `dim` coordinates (Matryoshka) and L2-normalise each row again."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if dim is not None:
        if not 1 <= dim <= vectors.shape[-1]:
            raise ValueError(f"dim={dim} is outside 1..{vectors.shape[-1]} for this model.")
        vectors = vectors[..., :dim]
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class Embedder:
    """A `SentenceTransformer` plus the rules for queries, documents and Matryoshka dimensions."""

    def __init__(
        self, model: SentenceTransformer, model_id: str, dim: int | None = None, batch_size: int = 32
    ):
        self.model = model
        self.model_id = model_id
        self.full_dim = int(model.get_embedding_dimension())
        if dim is not None and not 1 <= dim <= self.full_dim:
            raise ValueError(f"dim={dim} is outside 1..{self.full_dim} for {model_id}.")
        self.dim = dim or self.full_dim
        self.batch_size = batch_size

    @property
    def instruction_aware(self) -> bool:
        """True for models trained with query instructions (Qwen3-Embedding and its stand-in)."""
        return self.model.prompts.get("query", "").startswith("Instruct:") or "qwen3-embedding" in (
            self.model_id.lower()
        )

    @property
    def max_tokens(self) -> int:
        """The longest input, in tokens, that the model reads (longer input is truncated)."""
        return int(self.model.max_seq_length)

    def _encode(self, texts: list[str], prompt: str | None, show_progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # sentence-transformers sorts inputs by length before batching, so padding stays small.
        vectors = self.model.encode(
            texts,
            prompt=prompt,
            batch_size=self.batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=False,
        )
        return truncate_normalize(vectors, self.dim)

    def encode_documents(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        """Embed passages with no instruction; returns float32 rows of unit length."""
        return self._encode(list(texts), prompt="", show_progress=show_progress)

    def encode_queries(self, texts: list[str], instruction: str | None = None) -> np.ndarray:
        """Embed questions; instruction-aware models get `Instruct: {instruction}\\nQuery:` in front.

        `instruction=""` embeds the bare query (for comparisons); None uses the default task.
        """
        prompt = query_prompt(instruction) if self.instruction_aware and instruction != "" else ""
        return self._encode(list(texts), prompt=prompt, show_progress=False)

    def describe(self) -> dict[str, object]:
        """Model id, dimension and prompt handling, for logs and JSON."""
        return {"model": self.model_id, "dim": self.dim, "instruction_aware": self.instruction_aware}
