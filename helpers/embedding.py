"""Embeddings (notebook 02): documents as they are, queries with Qwen3's instruction, Matryoshka sizes.

`Embedder` calls sentence-transformers' own `encode_query` / `encode_document` (length-sorted batches) with
unit-length output, so inner product is cosine similarity, and `truncate_dim` for a Matryoshka size; with a
`VectorCache` it embeds each (model, prompt, dimension, text) once, across notebooks and runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from helpers.config import DEFAULT_QUERY_TASK, Settings
from helpers.setup import load_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from helpers.vector_cache import VectorCache


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


def course_embedder(model: SentenceTransformer, model_id: str, settings: Settings) -> Embedder:
    """An `Embedder` with the course's batch size, pinned revision and vector cache (RAG_EMBED_CACHE)."""
    from helpers.vector_cache import VectorCache

    cache = VectorCache(Path(settings.cache_dir) / "embeddings.sqlite") if settings.embed_cache else None
    return Embedder(model, model_id, None, settings.embed_batch_size, cache, settings.revision(model_id))


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
    """A loaded `SentenceTransformer`, the rules for queries, documents and Matryoshka sizes; a cache."""

    def __init__(
        self,
        model: SentenceTransformer,
        model_id: str,
        dim: int | None = None,
        batch_size: int = 32,
        cache: VectorCache | None = None,
        revision: str | None = None,
    ):
        self.model = model
        self.model_id = model_id
        self.full_dim = int(model.get_embedding_dimension())
        self.dim = self._check_dim(dim)
        self.batch_size = batch_size
        self.max_tokens = int(model.max_seq_length)  # longer input is truncated
        self.cache, self.revision, self._identity = cache, revision, ""

    @property
    def instruction_aware(self) -> bool:
        """True for models trained with query instructions (Qwen3-Embedding and its stand-ins)."""
        prompt = self.model.prompts.get("query", "")
        return prompt.startswith("Instruct:") or "qwen3-embedding" in self.model_id.lower()

    def with_dim(self, dim: int | None) -> Embedder:
        """The same loaded model giving vectors cut to a Matryoshka dimension (None: full)."""
        return Embedder(self.model, self.model_id, dim, self.batch_size, self.cache, self.revision)

    def _keys(self, texts: list[str], prompt: str) -> list[str]:
        from helpers.vector_cache import model_identity

        self._identity = self._identity or model_identity(self.model, self.model_id, self.revision)
        return [self.cache.key(self._identity, prompt, self.dim, text) for text in texts]

    def remember(self, texts: list[str], vectors: np.ndarray, prompt: str = "") -> None:
        """Store vectors this model gave for `texts` elsewhere (notebook 02's own calls) for later reuse."""
        if self.cache is not None:
            self.cache.put(self._keys(list(texts), prompt), vectors)

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        if not texts or self.cache is None:
            return self._library(texts, prompt)
        keys = self._keys(texts, prompt)
        found = self.cache.get(keys)
        if missing := list(dict.fromkeys(k for k in keys if k not in found)):  # each new text once
            text_of = dict(zip(keys, texts, strict=True))
            found |= dict(zip(missing, self._library([text_of[k] for k in missing], prompt), strict=True))
            self.cache.put(missing, [found[k] for k in missing])
        return np.stack([found[k] for k in keys]).astype(np.float32)

    def _library(self, texts: list[str], prompt: str) -> np.ndarray:
        """The library's `encode_query`/`encode_document`, by `batch_size` (GPU) or `token_batches` (CPU)."""
        encode = self.model.encode_query if prompt else self.model.encode_document
        dim = self.dim if self.dim < self.full_dim else None  # prompt "": none, whatever the model's default
        kwargs = {
            "prompt": prompt,
            "normalize_embeddings": True,
            "truncate_dim": dim,
            "show_progress_bar": False,
        }
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts or self.model.device.type != "cpu":
            return encode(texts, batch_size=self.batch_size, **kwargs).astype(np.float32) if texts else out
        tokens = self.model.tokenizer(
            [prompt + t for t in texts], truncation=True, max_length=self.max_tokens
        )
        for batch in token_batches([len(ids) for ids in tokens["input_ids"]]):
            out[batch] = encode([texts[i] for i in batch], batch_size=len(batch), **kwargs)
        return out


def token_batches(lengths: list[int], budget: int = 4096, slack: float = 1.1) -> list[list[int]]:
    """Indices shortest first, grouped within `slack` of one length and `budget` tokens (CPU: no pads)."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if (
            batches
            and lengths[i] <= slack * lengths[batches[-1][0]]
            and (len(batches[-1]) + 1) * lengths[i] <= budget
        ):
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches
