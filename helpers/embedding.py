"""Embeddings (notebook 02): documents as they are, queries with Qwen3's instruction, Matryoshka sizes.

`Embedder` calls sentence-transformers' own `encode_query` / `encode_document` (length-sorted batches) with
unit-length output, so inner product is cosine similarity, and `truncate_dim` for a Matryoshka size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from helpers.config import DEFAULT_QUERY_TASK, Settings
from helpers.setup import load_model

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
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def load_embedder(model_id: str, settings: Settings, hub: bool | None = None) -> SentenceTransformer:
    """A `SentenceTransformer` on the configured device and dtype (see `helpers.setup.load_model`)."""
    from sentence_transformers import SentenceTransformer

    return load_model("embedding", model_id, settings, SentenceTransformer, hub)


class Encoder:
    """Bare documents, instructed queries, a Matryoshka `dim`; subclasses define `_encode(texts, prompt)`."""

    model_id: str
    full_dim: int
    dim: int
    max_tokens: int

    @property
    def instruction_aware(self) -> bool:
        """True for models trained with query instructions."""
        raise NotImplementedError

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        raise NotImplementedError

    def _check_dim(self, dim: int | None) -> int:
        """`dim` (None: the full width) after checking it is a width this model has."""
        if dim is not None and not 1 <= dim <= self.full_dim:
            raise ValueError(f"dim={dim} is outside 1..{self.full_dim} for {self.model_id}.")
        return dim or self.full_dim

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        """Embed passages with no instruction; float32 rows of unit length."""
        return self._encode(list(texts), prompt="")

    def encode_queries(self, texts: list[str], instruction: str | None = None) -> np.ndarray:
        """Embed questions with `query_prompt(instruction)` in front where the model wants it ("": none)."""
        prompt = query_prompt(instruction) if self.instruction_aware and instruction != "" else ""
        return self._encode(list(texts), prompt=prompt)


class Embedder(Encoder):
    """A loaded `SentenceTransformer` plus the rules for queries, documents and Matryoshka dimensions."""

    def __init__(
        self, model: SentenceTransformer, model_id: str, dim: int | None = None, batch_size: int = 32
    ):
        self.model = model
        self.model_id = model_id
        self.full_dim = int(model.get_embedding_dimension())
        self.dim = self._check_dim(dim)
        self.batch_size = batch_size
        self.max_tokens = int(model.max_seq_length)  # longer input is truncated

    @property
    def instruction_aware(self) -> bool:
        """True for models trained with query instructions (Qwen3-Embedding and its stand-ins)."""
        prompt = self.model.prompts.get("query", "")
        return prompt.startswith("Instruct:") or "qwen3-embedding" in self.model_id.lower()

    def with_dim(self, dim: int | None) -> Embedder:
        """The same loaded model giving vectors cut to a Matryoshka dimension (None: full)."""
        return Embedder(self.model, self.model_id, dim, self.batch_size)

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encode = self.model.encode_query if prompt else self.model.encode_document
        dim = self.dim if self.dim < self.full_dim else None  # prompt "": none, whatever the model's default
        kwargs = {"batch_size": self.batch_size, "truncate_dim": dim, "show_progress_bar": False}
        return encode(texts, prompt=prompt, normalize_embeddings=True, **kwargs).astype(np.float32)
