"""The serving client: OpenAI-compatible HTTP endpoints, and embedding and reranking served over HTTP.

`Endpoint` is the one client recipe (retries, time-out) and the one way to explain a failure, for the chat
model (`generate`) and for served models. `RemoteEmbedder` and `RemoteReranker` give the in-process
interfaces over vLLM, TEI or Infinity.

`RemoteEmbedder` calls an OpenAI-compatible `/embeddings` route through the `openai` client;
`RemoteReranker` calls a `/rerank` route (the Jina/Cohere shape that vLLM and Infinity answer, or
TEI's own). Servers apply neither Qwen3's query instruction nor its reranker prompt, so both are
applied here, on the client: the server sees the very text the in-process models see, and the same
question gets the same ranking within the server's numeric precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from helpers.config import Settings
from helpers.embedding import Encoder, truncate_normalize
from helpers.offline.standins import is_stand_in
from helpers.rerank import Ranker, render

# What the server reads at most is its own business (it truncates); questions are cut at this many
# tokens' worth of characters, as for an in-process model of this length.
SERVED_MAX_TOKENS = 8192


class ModelServerError(RuntimeError):
    """A model server failed or answered something unusable; the message says which and what to do."""


@dataclass(frozen=True)
class Endpoint:
    """Where a model is served, and the variables that configure it (named in error messages)."""

    what: str  # "LLM endpoint", "embedding server", "rerank server"
    base_url: str  # "" means api.openai.com
    model: str
    timeout_s: float
    max_retries: int
    url_var: str
    key_var: str
    model_var: str
    api_key: str = field(default="", repr=False)

    @property
    def where(self) -> str:
        """The server, for messages."""
        return self.base_url or "api.openai.com"

    def client(self):
        """An `openai.OpenAI` client with bounded retries and a timeout."""
        from openai import OpenAI

        return OpenAI(
            # Local servers (vLLM, TEI, Infinity, Ollama) accept any key; the client insists on one.
            api_key=self.api_key or "not-needed",
            base_url=self.base_url or None,
            max_retries=self.max_retries,
            timeout=self.timeout_s,
        )

    def explain(self, exc: Exception) -> str:
        """One line on what went wrong and what to do; never contains the key."""
        import openai

        n = self.max_retries + 1
        tries = f"{n} attempt" if n == 1 else f"{n} attempts"
        head = f"The {self.what} {self.where}"
        if isinstance(exc, openai.AuthenticationError):
            return f"{head} rejected the API key (401). Check {self.key_var}."
        if isinstance(exc, openai.PermissionDeniedError):
            return f"{head} refused access (403) to model {self.model!r}."
        if isinstance(exc, openai.NotFoundError):
            return (
                f"{head} has no model {self.model!r} or no such route (404). "
                f"Check {self.model_var} and {self.url_var}."
            )
        if isinstance(exc, openai.RateLimitError):
            return f"{head} kept answering 429 (rate limit or quota) after {tries}."
        if isinstance(exc, openai.APITimeoutError):
            return f"{head} did not answer within {self.timeout_s:g} s ({tries})."
        if isinstance(exc, openai.APIConnectionError):
            return (
                f"Could not connect to the {self.what} {self.where} ({tries}). "
                f"Is the server running? Check {self.url_var}."
            )
        if isinstance(exc, openai.APIStatusError):
            if exc.status_code < 500:  # the server says what it refused (e.g. an unknown model name)
                detail = " ".join(str(exc.message).split())[:300]
                return (
                    f"{head} refused the request for model {self.model!r} "
                    f"(HTTP {exc.status_code}: {detail}). Check {self.model_var}."
                )
            return f"{head} answered HTTP {exc.status_code} after {tries}."
        return f"The call to the {self.what} {self.where} failed: {type(exc).__name__}."


def embedding_endpoint(settings: Settings, model: str) -> Endpoint:
    """RAG_EMBEDDING_URL serving `model`, with RAG_MODEL_API_KEY."""
    return _endpoint(settings, "embedding server", settings.embedding_url, model, "RAG_EMBEDDING_URL")


def rerank_endpoint(settings: Settings, model: str) -> Endpoint:
    """RAG_RERANK_URL serving `model`, with RAG_MODEL_API_KEY."""
    return _endpoint(settings, "rerank server", settings.rerank_url, model, "RAG_RERANK_URL")


def _endpoint(settings: Settings, what: str, url: str, model: str, url_var: str) -> Endpoint:
    model_var = "RAG_EMBEDDING_MODEL" if what.startswith("embedding") else "RAG_RERANKER_MODEL"
    return Endpoint(
        what=what,
        base_url=url,
        model=model,
        timeout_s=settings.model_timeout_s,
        max_retries=settings.model_max_retries,
        url_var=url_var,
        key_var="RAG_MODEL_API_KEY",
        model_var=model_var,
        api_key=settings.model_api_key,
    )


def is_qwen3(model_id: str, kind: str) -> bool:
    """True when a served model id names a Qwen3 embedding or reranker model (or a Qwen3 stand-in)."""
    name = model_id.lower()
    return "qwen3" in name and kind in name


class RemoteEmbedder(Encoder):
    """`Embedder`'s interface over an OpenAI-compatible embeddings route, in batches."""

    def __init__(
        self,
        endpoint: Endpoint,
        dim: int | None = None,
        batch_size: int = 64,
        client=None,
        full_dim: int | None = None,
    ):
        self.endpoint = endpoint
        self.model_id = endpoint.model
        self.batch_size = batch_size
        self.client = client or endpoint.client()
        # Unless known, ask the server once: this also fails fast when it is unreachable or lacks the model.
        self.full_dim = full_dim or len(self._call(["dimension probe"])[0])
        self.dim = self._check_dim(dim)
        self.max_tokens = SERVED_MAX_TOKENS

    @property
    def instruction_aware(self) -> bool:
        """True for Qwen3-Embedding: its queries carry an instruction, applied here."""
        return is_qwen3(self.model_id, "embedding")

    def with_dim(self, dim: int | None) -> RemoteEmbedder:
        """The same server giving vectors cut to a Matryoshka dimension (None: full)."""
        return RemoteEmbedder(self.endpoint, dim, self.batch_size, self.client, self.full_dim)

    def _call(self, texts: list[str]) -> list[list[float]]:
        import openai

        try:
            resp = self.client.embeddings.create(model=self.model_id, input=texts, encoding_format="float")
        except openai.OpenAIError as exc:
            raise ModelServerError(self.endpoint.explain(exc)) from None
        rows = sorted(resp.data or [], key=lambda d: d.index)
        vectors = [d.embedding for d in rows]
        width = {len(v) for v in vectors if isinstance(v, list)}
        if len(vectors) != len(texts) or len(width) != 1 or not all(isinstance(v, list) for v in vectors):
            raise ModelServerError(
                f"The {self.endpoint.what} {self.endpoint.where} answered {len(vectors)} vectors of widths "
                f"{sorted(width)} for {len(texts)} texts: not an embeddings answer. Check RAG_EMBEDDING_URL."
            )
        return vectors

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = [prompt + t for t in texts]  # servers apply no sentence-transformers prompt
        out = []
        for start in range(0, len(texts), self.batch_size):
            out += self._call(texts[start : start + self.batch_size])
        vectors = np.asarray(out, dtype=np.float32)
        if vectors.shape[1] != self.full_dim:
            raise ModelServerError(
                f"The {self.endpoint.what} {self.endpoint.where} changed its vector width from "
                f"{self.full_dim} to {vectors.shape[1]}: another model answers. Check RAG_EMBEDDING_MODEL."
            )
        return truncate_normalize(vectors, self.dim)


class RemoteReranker(Ranker):
    """`Reranker`'s interface over a `/rerank` route; scores are the server's relevance in [0, 1]."""

    def __init__(self, endpoint: Endpoint, client=None):
        self.endpoint = endpoint
        self.model_id = endpoint.model
        self.is_stand_in = is_stand_in(self.model_id)
        self.client = client or endpoint.client()

    @property
    def qwen3_prompt(self) -> bool:
        """True when the client must wrap pairs in Qwen3-Reranker's prompt (servers do not)."""
        return is_qwen3(self.model_id, "reranker")

    def score(self, query: str, documents: list[str], instruction: str | None = None) -> np.ndarray:
        """Relevance for each document, in input order (P("yes") for Qwen3-Reranker)."""
        if not documents:
            return np.zeros(0, dtype=np.float32)
        if self.qwen3_prompt:
            halves = [split_prompt(query, d, instruction) for d in documents]
            query, documents = halves[0][0], [doc for _, doc in halves]
        answer = self._call(query, documents)
        return self._parse(answer, len(documents))

    def _call(self, query: str, documents: list[str]) -> object:
        import httpx
        import openai

        # vLLM and Infinity read `documents`; TEI reads `texts`. Each ignores the other's field.
        body = {"model": self.model_id, "query": query, "documents": documents, "texts": documents}
        try:
            return self.client.post("/rerank", body=body, cast_to=httpx.Response).json()
        except openai.OpenAIError as exc:
            raise ModelServerError(self.endpoint.explain(exc)) from None
        except ValueError:
            raise ModelServerError(
                f"The {self.endpoint.what} {self.endpoint.where} answered no JSON."
            ) from None

    def _parse(self, answer: object, n: int) -> np.ndarray:
        # Jina/Cohere shape (vLLM, Infinity): {"results": [{"index", "relevance_score"}]};
        # TEI's own: [{"index", "score"}].
        results = answer.get("results") if isinstance(answer, dict) else answer
        scores = np.full(n, np.nan, dtype=np.float32)
        try:
            for item in results:
                value = item["relevance_score"] if "relevance_score" in item else item["score"]
                scores[int(item["index"])] = float(value)
        except (TypeError, KeyError, ValueError, IndexError):
            scores[:] = np.nan
        if np.isnan(scores).any():
            raise ModelServerError(
                f"The {self.endpoint.what} {self.endpoint.where} did not answer one score per document "
                f"({str(answer)[:120]}): is RAG_RERANK_URL a rerank route (vLLM, TEI or Infinity)?"
            )
        return scores


def split_prompt(query: str, document: str, instruction: str | None) -> tuple[str, str]:
    """The reranker's prompt cut before `<Document>`: what a rerank server gets as query and as document.

    A server that scores Qwen3-Reranker as a sequence classifier (vLLM, Infinity) joins the two texts
    without a separator, so the model reads exactly `render(query, document, instruction)`.
    """
    sentinel = "\x00document\x00"
    prompt = render(query, sentinel, instruction)
    cut = prompt.index(f"<Document>: {sentinel}")
    return prompt[:cut], prompt[cut:].replace(sentinel, document)
