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


def pack_by_length(lengths: list[int], token_budget: int, max_batch: int | None = None) -> list[list[int]]:
    """Indices sorted longest first, packed so that (longest length x count) fits `token_budget`.

    Shared by the embedder and the reranker: sorting keeps padding small, the budget bounds memory.
    """
    packed: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        # The first index of a batch is its longest member, so it sets the padded width.
        fits = packed and (max_batch is None or len(packed[-1]) < max_batch)
        if fits and lengths[packed[-1][0]] * (len(packed[-1]) + 1) <= token_budget:
            packed[-1].append(i)
        else:
            packed.append([i])
    return packed


def truncate_normalize(vectors: np.ndarray, dim: int | None = None) -> np.ndarray:
    """Keep the first `dim` coordinates (Matryoshka) and L2-normalise each row again."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if dim is not None:
        if not 1 <= dim <= vectors.shape[-1]:
            raise ValueError(f"dim={dim} is outside 1..{vectors.shape[-1]} for this model.")
        vectors = vectors[..., :dim]
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class Encoder:
    """What every embedder does around its `_encode`: bare documents, instructed queries, a `dim`.

    Subclasses (`Embedder` here, `RemoteEmbedder` for a server) set `model_id`, `full_dim` and `dim`
    and define `instruction_aware` and `_encode(texts, prompt)`.
    """

    model_id: str
    full_dim: int
    dim: int

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
        """Embed passages with no instruction; returns float32 rows of unit length."""
        return self._encode(list(texts), prompt="")

    def encode_queries(self, texts: list[str], instruction: str | None = None) -> np.ndarray:
        """Embed questions; instruction-aware models get `Instruct: {instruction}\\nQuery:` in front.

        `instruction=""` embeds the bare query (for comparisons); None uses the default task.
        """
        prompt = query_prompt(instruction) if self.instruction_aware and instruction != "" else ""
        return self._encode(list(texts), prompt=prompt)


class Embedder(Encoder):
    """A `SentenceTransformer` plus the rules for queries, documents and Matryoshka dimensions."""

    def __init__(
        self,
        model: SentenceTransformer,
        model_id: str,
        dim: int | None = None,
        batch_size: int = 256,
        token_budget: int | None = None,
    ):
        self.model = model
        self.model_id = model_id
        self.full_dim = int(model.get_embedding_dimension())
        self.dim = self._check_dim(dim)
        self.batch_size = batch_size
        # Padded tokens per batch. On a CPU, padding is pure waste and big batches buy no parallelism
        # (measured: all-MiniLM-L6-v2 over the FAQ, batches of 32 ran 0.7x the speed of one text per
        # call, batches of 4 ran 1.3x), so CPU batches stay small; a GPU wants them large.
        self.token_budget = token_budget or (2048 if str(model.device) == "cpu" else 65536)

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

    def batches(self, texts: list[str], prompt: str = "") -> list[list[int]]:
        """Indices sorted longest first, packed so that (longest length x count) fits the token budget."""
        tok = self.model.tokenizer
        ids = tok([prompt + t for t in texts], truncation=True, max_length=self.max_tokens)["input_ids"]
        return pack_by_length([len(x) for x in ids], self.token_budget, self.batch_size)

    def with_dim(self, dim: int | None) -> Embedder:
        """The same loaded model giving vectors cut to a Matryoshka dimension (None: full)."""
        return Embedder(self.model, self.model_id, dim, self.batch_size, self.token_budget)

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.zeros((len(texts), self.full_dim), dtype=np.float32)
        for batch in self.batches(texts, prompt):
            out[batch] = self.model.encode(
                [texts[i] for i in batch],
                prompt=prompt,  # "" means none, even for a model with a default prompt
                batch_size=len(batch),
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=False,
            )
        return truncate_normalize(out, self.dim)
