"""The pipeline (notebook 05): notebooks 01-04 composed into ingest, retrieve, rerank and answer.

`RAG` takes settings and a model choice made once at an entry point, checks Milvus and every model before
loading any, and loads each on first use. `ask` returns an `AskResult`; showing it is the caller's job.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from helpers.chunking import DataError, Passage, chunk_documents, load_corpus
from helpers.config import BAR_FORMAT, Settings
from helpers.embedding import Encoder, course_embedder, load_embedder
from helpers.generate import LLMError, failed_answer, generate
from helpers.offline import hub
from helpers.offline.standins import TINY_RERANKER_ID, is_stand_in
from helpers.remote import RemoteEmbedder, RemoteReranker, embedding_endpoint, rerank_endpoint
from helpers.rerank import Ranker, Reranker, load_reranker
from helpers.setup import STAND_IN_LABEL, ModelChoice
from helpers.store import SEARCH_MODES, MilvusStore, connect

RERANKER_CHOICES = ("auto", "qwen3", "stand-in", "none")
# A question is cut to what the embedder reads (a generous 4 characters per token), and to 8192 at most.
CHARS_PER_TOKEN, QUESTION_MAX_CHARS = 4, 8192


@dataclass
class IngestReport:
    """What `ingest` did: the collection, its final row count and what changed."""

    collection: str
    rows: int
    corpus: str
    chunker: str
    models: dict
    embedded: int
    removed: int
    origin: str


@dataclass
class AskResult:
    """Everything `ask` produced: the answer, its backend, the sources and stage timings."""

    question: str  # as used: cut to `RAG.question_limit()` characters when longer (see `cut_from`)
    answer: str
    answer_backend: str
    retrieval: str
    reranker: str  # "none", or the model id (labelled when it is a random stand-in)
    sources: list[Passage]
    models: dict
    timings_ms: dict[str, float]
    cut_from: int = 0  # the question's length before it was cut; 0 when it was not
    llm_error: str = ""  # why the configured LLM was not used, when its call failed


class RAG:
    """Embedder, Milvus store, rerankers and generator; `embedder`/`rerankers` share loaded models."""

    def __init__(
        self,
        settings: Settings,
        choice: ModelChoice,
        *,
        embedder: Encoder | None = None,
        rerankers: dict[str, Ranker] | None = None,
    ):
        self.settings = settings
        self.choice = choice
        self._embedder = embedder
        self._store: MilvusStore | None = None
        self.rerankers: dict[str, Ranker] = {} if rerankers is None else rerankers  # loaded, by kind
        self._index_checked = False  # the collection is known to exist and to match the embedder
        self._hub = choice.hub  # whether the Hugging Face hub answers: asked once at most, when needed

    @property
    def embedder(self) -> Encoder:
        """The embedding model for documents and queries: loaded here, or served (RAG_EMBEDDING_URL)."""
        if self._embedder is None:
            model_id = self.choice.embedding_model
            if self.settings.embedding_url:
                self._embedder = RemoteEmbedder(embedding_endpoint(self.settings, model_id))
            else:
                st = load_embedder(model_id, self.settings, self._check("embedding", model_id))
                self._embedder = course_embedder(st, model_id, self.settings)
        return self._embedder

    @property
    def store(self) -> MilvusStore:
        """The Milvus collection (Lite file or server, from the settings)."""
        if self._store is None:
            client = connect(self.settings.milvus_uri, self.settings.milvus_token)
            self._store = MilvusStore(client, self.settings.collection)
        return self._store

    def close(self) -> None:
        """Close the Milvus connection, if opened (Milvus Lite holds its file until the process ends)."""
        if self._store is not None:
            self._store.client.close()
            self._store = None
            self._index_checked = False

    def prepare(self, reranker: str = "none") -> None:
        """Connect to Milvus, then check that each model still to load can be had, before loading any."""
        _ = self.store
        if self._embedder is None and not self.settings.embedding_url:
            self._check("embedding", self.choice.embedding_model)
        if reranker not in ("none", *self.rerankers) and not self._served(reranker):
            self._check("reranker", self._reranker_id(reranker))

    def _check(self, kind: str, model_id: str) -> bool | None:
        """Fail fast when `model_id` cannot be had; the hub is asked once at most, only when needed."""
        if self._hub is None and hub.needs_download(model_id, self.settings.revision(model_id)):
            self._hub = hub.reachable(self.settings)
        hub.check_downloadable(kind, model_id, self.settings, self._hub)
        return self._hub

    def _served(self, which: str) -> bool:
        return which == "qwen3" and bool(self.settings.rerank_url)

    def _reranker_id(self, which: str) -> str:
        return TINY_RERANKER_ID if which == "stand-in" else self.choice.trained_reranker

    def reranker(self, which: str = "qwen3") -> Ranker:
        """The trained reranker (`qwen3`, or served at RAG_RERANK_URL) or the random `stand-in`."""
        if which in self.rerankers:
            return self.rerankers[which]
        model_id = self._reranker_id(which)
        if self._served(which):
            self.rerankers[which] = RemoteReranker(rerank_endpoint(self.settings, model_id))
        else:
            ce = load_reranker(model_id, self.settings, self._check("reranker", model_id))
            batch, stand_in = self.settings.rerank_batch_size, is_stand_in(model_id)
            self.rerankers[which] = Reranker(ce, model_id, batch_size=batch, is_stand_in=stand_in)
        return self.rerankers[which]

    def resolve_reranker(self, requested: str) -> str:
        """`auto`: the trained reranker with the Qwen3 kit (or when served), none with the offline kit."""
        if requested not in RERANKER_CHOICES:
            raise ValueError(f"Unknown reranker {requested!r}: use one of {', '.join(RERANKER_CHOICES)}.")
        if requested == "auto":
            served = self.choice.kit == "served" and self.settings.rerank_url
            return "qwen3" if self.choice.kit == "qwen3" or served else "none"
        return requested

    def ingest(
        self,
        corpus: str = "milvus-faq",
        chunker: str = "markdown",
        rebuild: bool = False,
        progress: bool = True,
    ) -> IngestReport:
        """Chunk, embed what is not stored yet, upsert, drop rows that left (ids from content: rerunnable)."""
        from tqdm.std import tqdm

        loaded = load_corpus(corpus, self.settings)
        passages = chunk_documents(loaded.documents, chunker)
        if not passages:
            raise DataError(f"The corpus {loaded.name!r} produced no passages: nothing to index.")
        self.prepare()
        store, embedder = self.store, self.embedder
        if rebuild:
            store.drop()
        if not store.exists():
            store.create(embedder.dim, embedder.model_id)
        store.check_model(embedder.model_id, embedder.dim)
        self._index_checked = True
        stored = store.existing_ids([p.id for p in passages])
        todo = [p for p in passages if p.id not in stored]
        with tqdm(total=len(todo), desc="embed + upsert", bar_format=BAR_FORMAT, disable=not progress) as bar:
            for start in range(0, len(todo), 16):
                part = todo[start : start + 16]
                store.upsert(part, embedder.encode_documents([p.text for p in part]))
                bar.update(len(part))
        removed = store.delete_missing({p.id for p in passages})
        report = (loaded.name, chunker, self.choice.as_dict(), len(todo), removed, loaded.origin)
        return IngestReport(store.collection, store.count(), *report)

    def ensure_index(self, corpus: str = "milvus-faq", chunker: str = "markdown") -> None:
        """Ingest when the collection is missing; otherwise check once that this embedder built it."""
        if self._index_checked:
            return
        if not self.store.exists():
            print(f"Collection {self.settings.collection!r} is missing: ingesting {corpus}.", file=sys.stderr)
            self.ingest(corpus, chunker)
            return
        self.store.load()
        self.store.check_model(self.embedder.model_id, self.embedder.dim)
        self._index_checked = True

    def question_limit(self) -> int:
        """The longest question, in characters, that `ask` and `retrieve` use (longer ones are cut)."""
        return min(QUESTION_MAX_CHARS, CHARS_PER_TOKEN * self.embedder.max_tokens)

    def _question(self, question: str) -> str:
        """The question stripped; an empty one refused, an overlong one cut (with a warning)."""
        question = (question or "").strip()
        if not question:
            raise ValueError("The question is empty: ask something, e.g. 'How is data stored in milvus?'.")
        limit = self.question_limit()
        if len(question) > limit:
            why = f"{self.embedder.model_id} reads at most {self.embedder.max_tokens} tokens"
            warnings.warn(
                f"The question has {len(question):,} characters; only its first {limit:,} are used ({why}).",
                stacklevel=3,
            )
        return question[:limit]

    def retrieve(
        self,
        question: str,
        mode: str = "dense",
        limit: int = 10,
        instruction: str | None = None,
        timings: dict[str, float] | None = None,
    ) -> list[Passage]:
        """Search with `dense`, `bm25` or `hybrid`; `timings` gets `embed_query` and `search` (ms)."""
        if mode not in SEARCH_MODES:
            raise ValueError(f"Unknown retrieval {mode!r}: use one of {', '.join(SEARCH_MODES)}.")
        self.prepare()
        timings = {} if timings is None else timings
        return self._search(self._question(question), mode, limit, instruction, timings)

    def _search(
        self, question: str, mode: str, limit: int, instruction: str | None, timings
    ) -> list[Passage]:
        vector = None
        if mode != "bm25":
            self.ensure_index()
            t = time.perf_counter()
            vector = self.embedder.encode_queries([question], instruction)[0]
            timings["embed_query"] = _ms(t)
        t = time.perf_counter()
        hits = self.store.search(mode, vector, question, limit)
        timings["search"] = _ms(t)
        return hits

    def ask(
        self,
        question: str,
        top_k: int = 10,
        top_n: int = 3,
        retrieval: str | None = None,
        reranker: str = "auto",
        instruction: str | None = None,
        stream: bool = False,
        on_token: Callable[[str], None] | None = None,
        on_sources: Callable[[AskResult], None] | None = None,
    ) -> AskResult:
        """Retrieve `top_k` (dense with a reranker, else hybrid), rerank to `top_n`, answer from them."""
        if top_k < 1 or top_n < 1:
            raise ValueError(f"top-k and top-n must be at least 1 (got top-k={top_k}, top-n={top_n}).")
        which = self.resolve_reranker(reranker)
        if retrieval is not None and retrieval not in SEARCH_MODES:
            raise ValueError(f"Unknown retrieval {retrieval!r}: use one of {', '.join(SEARCH_MODES)}.")
        asked = (question or "").strip()
        t0 = time.perf_counter()
        self.prepare(which)  # Milvus and every model checked before the first model loads
        question = self._question(asked)
        rr = None if which == "none" else self.reranker(which)
        retrieval = retrieval or ("dense" if rr else "hybrid")
        timings: dict[str, float] = {"setup": _ms(t0)}
        sources = self._search(question, retrieval, top_k, instruction, timings)
        if rr is not None and sources:
            t = time.perf_counter()
            sources = rr.rerank(question, sources, top_n=top_n, instruction=instruction)
            timings["rerank"] = _ms(t)
        label = "none" if rr is None else rr.model_id + (f": {STAND_IN_LABEL}" if rr.is_stand_in else "")
        cut_from = len(asked) if len(asked) > len(question) else 0
        result = AskResult(
            question, "", "", retrieval, label, sources[:top_n], self.choice.as_dict(), {}, cut_from
        )
        if on_sources is not None:  # a caller can show the sources while the answer is generated
            on_sources(result)
        t = time.perf_counter()
        try:
            answer = generate(question, result.sources, self.settings, stream=stream, on_token=on_token)
        except LLMError as exc:
            result.llm_error, answer = str(exc), failed_answer(result.sources, exc, self.settings)
        timings["generate"] = _ms(t)
        timings["total"] = _ms(t0)
        result.answer, result.answer_backend = answer.text, answer.backend
        result.timings_ms = {k: round(v, 1) for k, v in timings.items()}
        return result


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
