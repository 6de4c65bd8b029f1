"""Embeddings (notebook 02): documents as they are, queries with Qwen3's instruction, Matryoshka sizes.

`Embedder` calls sentence-transformers' own `encode_query` / `encode_document` (length-sorted batches) with
unit-length output, so inner product is cosine similarity, and `truncate_dim` for a Matryoshka size; with a
`VectorCache` it embeds each (model, prompt, dimension, text) once, across notebooks and runs.
"""

from __future__ import annotations

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
    from helpers.vector_cache import open_cache

    cache = open_cache(settings.cache_dir, settings.embed_cache)
    revision = settings.revision(model_id)
    return Embedder(model, model_id, batch_size=settings.embed_batch_size, cache=cache, revision=revision)


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
    """A loaded `SentenceTransformer` plus the rules for queries, documents and Matryoshka dimensions.

    With a `cache` (helpers.vector_cache), texts embedded before by the same model, prompt and dimension
    come from disk and only the others reach the model.
    """

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
        self.cache, self.revision = cache, revision
        self._identity = ""

    @property
    def instruction_aware(self) -> bool:
        """True for models trained with query instructions (Qwen3-Embedding and its stand-ins)."""
        prompt = self.model.prompts.get("query", "")
        return prompt.startswith("Instruct:") or "qwen3-embedding" in self.model_id.lower()

    @property
    def identity(self) -> str:
        """What determines this model's vectors besides prompt, dimension and text (the cache key's part)."""
        if not self._identity:
            from helpers.vector_cache import weights_fingerprint

            dtype = str(next(self.model.parameters()).dtype)
            parts = (f"{self.model_id}@{self.revision or '-'}", dtype, str(self.max_tokens))
            self._identity = "|".join((*parts, weights_fingerprint(self.model)))
        return self._identity

    def with_dim(self, dim: int | None) -> Embedder:
        """The same loaded model giving vectors cut to a Matryoshka dimension (None: full)."""
        other = Embedder(self.model, self.model_id, dim, self.batch_size, self.cache, self.revision)
        other._identity = self._identity
        return other

    def _keys(self, texts: list[str], prompt: str) -> list[str]:
        return [self.cache.key(self.identity, prompt, self.dim, text) for text in texts]

    def remember(self, texts: list[str], vectors: np.ndarray, prompt: str = "") -> None:
        """Store vectors this model gave for `texts` elsewhere (notebook 02's own calls) for later reuse."""
        if self.cache is not None:
            self.cache.put(self._keys(list(texts), prompt), np.asarray(vectors, dtype=np.float32))

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.cache is None:
            return self._library(texts, prompt)
        keys = self._keys(texts, prompt)
        found = self.cache.get(keys)
        missing = list(dict.fromkeys(k for k in keys if k not in found))  # each new text once
        if missing:
            first = {k: text for k, text in zip(keys, texts, strict=True)}
            vectors = self._library([first[k] for k in missing], prompt)
            self.cache.put(missing, vectors)
            found |= dict(zip(missing, vectors, strict=True))
        return np.stack([found[k] for k in keys]).astype(np.float32)

    def _library(self, texts: list[str], prompt: str) -> np.ndarray:
        """sentence-transformers' own `encode_query` / `encode_document`: unit-length float32 rows.

        On a GPU, batches of `batch_size`. On a CPU, where every pad token costs as much as a real one,
        batches of texts within PAD_SLACK of one length and at most CPU_TOKEN_BUDGET tokens (`token_batches`).
        """
        encode = self.model.encode_query if prompt else self.model.encode_document
        dim = self.dim if self.dim < self.full_dim else None  # prompt "": none, whatever the model's default
        kwargs = {
            "prompt": prompt,
            "normalize_embeddings": True,
            "truncate_dim": dim,
            "show_progress_bar": False,
        }
        if self.model.device.type != "cpu":
            return encode(texts, batch_size=self.batch_size, **kwargs).astype(np.float32)
        tokens = self.model.tokenizer(
            [prompt + t for t in texts], truncation=True, max_length=self.max_tokens
        )
        out = np.empty((len(texts), dim or self.full_dim), dtype=np.float32)
        for batch in token_batches([len(ids) for ids in tokens["input_ids"]]):
            out[batch] = encode([texts[i] for i in batch], batch_size=len(batch), **kwargs)
        return out


CPU_TOKEN_BUDGET = 4096  # tokens (padding included) per batch on a CPU
PAD_SLACK = 1.1  # a batch's longest text at most 10% longer than its shortest: little padding


def token_batches(
    lengths: list[int], budget: int = CPU_TOKEN_BUDGET, slack: float = PAD_SLACK
) -> list[list[int]]:
    """Indices grouped shortest first: each group within `slack` of one length and `budget` padded tokens."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        batch = batches[-1] if batches else []
        fits = batch and lengths[i] <= slack * lengths[batch[0]] and (len(batch) + 1) * lengths[i] <= budget
        if fits:
            batch.append(i)
        else:
            batches.append([i])
    return batches
