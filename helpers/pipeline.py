"""The two-stage RAG pipeline end to end: ingest a corpus, then retrieve, rerank and answer.

`RAG` is built from resolved settings and a model choice (both made once at an entry point) and
loads each model the first time it is needed. Every stage hands on the same `Passage` records.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from helpers.config import Settings
from helpers.data import DataError, chunk_documents, load_corpus
from helpers.embedding import Embedder
from helpers.generate import CONFIGURE_HINT, Answer, LLMError, extractive_answer, generate
from helpers.models import (
    STAND_IN_LABEL,
    TINY_RERANKER_ID,
    ModelChoice,
    check_downloadable,
    hub_reachable,
    is_stand_in,
    load_embedder,
    load_reranker,
    needs_download,
)
from helpers.passage import Passage
from helpers.remote import RemoteEmbedder, RemoteReranker, embedding_endpoint, rerank_endpoint
from helpers.rerank import Ranker, Reranker
from helpers.store import SEARCH_MODES, MilvusStore, connect

RERANKER_CHOICES = ("auto", "qwen3", "stand-in", "none")
# A question is cut to about what the embedder reads: its token limit times a generous 4 characters
# per token, and never more than QUESTION_MAX_CHARS (longer text is not a question; it would also
# crowd the reranker's and the LLM's input).
CHARS_PER_TOKEN = 4
QUESTION_MAX_CHARS = 8192
# How each retrieval mode is named in the notes `ask` returns.
RETRIEVAL_LABELS = {
    "dense": "dense search (embeddings)",
    "bm25": "BM25 keyword search",
    "hybrid": "hybrid search (dense + BM25)",
}
# The answer backend when an LLM endpoint is configured but its call failed (starts like the others).
LLM_FAILED_BACKEND = "extractive: the LLM call failed"


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

    def as_json(self) -> dict:
        """The CLI's JSON contract: collection, rows, corpus, chunker, models (plus details)."""
        return asdict(self)


@dataclass
class AskResult:
    """Everything `ask` produced: the answer, its backend, the sources and stage timings."""

    question: str
    answer: str
    answer_backend: str
    retrieval: str
    reranker: str
    sources: list[Passage]
    models: dict
    timings_ms: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        """The CLI's JSON contract."""
        return asdict(self)


class RAG:
    """Embedder + Milvus store + optional reranker + generator, for one settings and model choice.

    `embedder` and `rerankers` take models that are already loaded (to share them between two RAGs).
    """

    def __init__(
        self,
        settings: Settings,
        choice: ModelChoice,
        *,
        embedder: Embedder | None = None,
        rerankers: dict[str, Ranker] | None = None,
    ):
        self.settings = settings
        self.choice = choice
        self._embedder = embedder
        self._store: MilvusStore | None = None
        self.rerankers: dict[str, Ranker] = {} if rerankers is None else rerankers  # loaded, by kind
        self._index_checked = False  # the collection is known to exist and to match the embedder
        self._hub = choice.hub  # whether the Hugging Face hub answers: asked once at most, when needed

    # --- stages, loaded on first use -------------------------------------------------------------

    @property
    def embedder(self) -> Embedder | RemoteEmbedder:
        """The embedding model for documents and queries: loaded here, or served (RAG_EMBEDDING_URL)."""
        if self._embedder is None:
            model_id = self.choice.embedding_model
            if self.settings.embedding_url:
                self._embedder = RemoteEmbedder(embedding_endpoint(self.settings, model_id))
            else:
                st = load_embedder(model_id, self.settings, self._hub_answer(model_id))
                self._embedder = Embedder(st, model_id, batch_size=self.settings.embed_batch_size)
        return self._embedder

    @property
    def store(self) -> MilvusStore:
        """The Milvus collection (Lite file or server, from the settings)."""
        if self._store is None:
            client = connect(self.settings.milvus_uri, self.settings.milvus_token)
            self._store = MilvusStore(client, self.settings.collection)
        return self._store

    def close(self) -> None:
        """Close the Milvus connection, if one was opened (a Lite file is then free for other processes)."""
        if self._store is not None:
            self._store.client.close()
            self._store = None
            self._index_checked = False

    def prepare(self, reranker: str = "none") -> None:
        """Connect to Milvus, then check that each model still to load (the embedder, and `reranker`
        unless "none") is cached or downloadable, before loading any: each fails in seconds, in one line."""
        _ = self.store  # connects
        if self._embedder is None and not self.settings.embedding_url:
            self._check_downloadable("embedding", self.choice.embedding_model)
        if reranker != "none" and reranker not in self.rerankers and not self._served_reranker(reranker):
            self._check_downloadable("reranker", self._reranker_id(reranker))

    def _check_downloadable(self, kind: str, model_id: str) -> None:
        check_downloadable(kind, model_id, self.settings, self._hub_answer(model_id))

    def _hub_answer(self, model_id: str) -> bool | None:
        """Whether the hub answers: asked once at most, and only for a model that must be downloaded."""
        if self._hub is None and needs_download(model_id):
            self._hub = hub_reachable(self.settings)
        return self._hub

    def _served_reranker(self, which: str) -> bool:
        return which == "qwen3" and bool(self.settings.rerank_url)

    def _reranker_id(self, which: str) -> str:
        return TINY_RERANKER_ID if which == "stand-in" else self.choice.trained_reranker

    def reranker(self, which: str = "qwen3") -> Ranker:
        """The trained reranker (`qwen3`: RAG_RERANKER_MODEL, served at RAG_RERANK_URL when set) or the
        tiny random `stand-in`, loaded once."""
        if which not in self.rerankers and self._served_reranker(which):
            self.rerankers[which] = RemoteReranker(
                rerank_endpoint(self.settings, self.choice.trained_reranker)
            )
        if which not in self.rerankers:
            model_id = self._reranker_id(which)
            ce = load_reranker(model_id, self.settings, self._hub_answer(model_id))
            self.rerankers[which] = Reranker(
                ce,
                model_id,
                token_budget=self.settings.rerank_token_budget,
                is_stand_in=is_stand_in(model_id),
            )
        return self.rerankers[which]

    def resolve_reranker(self, requested: str) -> str:
        """`auto`: the trained reranker with the Qwen3 kit (or when served), none with the offline kit."""
        if requested not in RERANKER_CHOICES:
            raise ValueError(f"Unknown reranker {requested!r}: use one of {', '.join(RERANKER_CHOICES)}.")
        if requested == "auto":
            served = self.choice.kit == "served" and self.settings.rerank_url
            return "qwen3" if self.choice.kit == "qwen3" or served else "none"
        return requested

    # --- ingest ----------------------------------------------------------------------------------

    def ingest(
        self,
        corpus: str = "milvus-faq",
        chunker: str = "markdown",
        rebuild: bool = False,
        progress: bool | Callable = True,
    ) -> IngestReport:
        """Chunk a corpus, embed what is not stored yet, upsert it, and drop rows that left the corpus.

        Safe to rerun: ids derive from content, so a second run embeds nothing and a run that was
        killed halfway picks up where it stopped, without duplicates. `progress`: a bar on stderr
        (True), none (False), or a hook `progress(items, total, label)` such as a notebook's.
        """
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
        else:
            store.check_model(embedder.model_id, embedder.dim)
        self._index_checked = True
        stored = store.existing_ids([p.id for p in passages])
        todo = [p for p in passages if p.id not in stored]
        self._embed_and_upsert(todo, progress)
        removed = store.delete_missing({p.id for p in passages})
        return IngestReport(
            collection=store.collection,
            rows=store.count(),
            corpus=loaded.name,
            chunker=chunker,
            models=self.choice.as_dict(),
            embedded=len(todo),
            removed=removed,
            origin=loaded.origin,
        )

    def _embed_and_upsert(self, passages: list[Passage], progress: bool | Callable, batch: int = 64) -> None:
        from tqdm.std import tqdm

        hook = progress if callable(progress) else None
        if hook is not None:
            batch = 8  # a notebook's progress line moves every 8 passages
        parts = [passages[i : i + batch] for i in range(0, len(passages), batch)]
        # No rate or ETA in the bar: the same run prints the same text (notebook outputs stay stable).
        bar = tqdm(
            total=len(passages),
            desc="embed + upsert",
            bar_format="{desc}: {n_fmt}/{total_fmt} chunks |{bar:24}| {percentage:3.0f}%",
            mininterval=0,
            disable=hook is not None or not progress or not passages,
        )
        if hook is not None and parts:
            parts = hook(parts, len(parts), "embed + upsert, batches of 8 passages")
        try:
            for part in parts:
                self.store.upsert(part, self.embedder.encode_documents([p.text for p in part]))
                bar.update(len(part))
        finally:
            bar.close()  # ends the bar's line, so an error message that follows starts on its own line

    def ensure_index(self, corpus: str = "milvus-faq", chunker: str = "markdown") -> None:
        """Ingest when the collection is missing; otherwise check once that this embedder built it."""
        if self._index_checked:
            return
        if not self.store.exists():
            print(
                f"Collection {self.settings.collection!r} is missing: ingesting {corpus} first.",
                file=sys.stderr,
            )
            self.ingest(corpus, chunker)  # checks the model and marks the index checked
            return
        self.store.load()
        self.store.check_model(self.embedder.model_id, self.embedder.dim)
        self._index_checked = True

    # --- retrieve, rerank, answer ----------------------------------------------------------------

    def question_limit(self) -> int:
        """The longest question, in characters, that `ask` and `retrieve` use (longer ones are cut)."""
        return min(QUESTION_MAX_CHARS, CHARS_PER_TOKEN * self.embedder.max_tokens)

    def _question(self, question: str, notes: list[str] | None = None) -> str:
        """The question stripped; an empty one refused, an overlong one cut with a warning (and a note)."""
        question = _nonempty(question)
        limit = self.question_limit()
        if len(question) <= limit:
            return question
        message = (
            f"The question has {len(question):,} characters; only its first {limit:,} are used "
            f"({self.embedder.model_id} reads at most {self.embedder.max_tokens} tokens)."
        )
        warnings.warn(message, UserWarning, stacklevel=3)
        if notes is not None:
            notes.append(message)
        return question[:limit]

    def retrieve(
        self,
        question: str,
        mode: str = "dense",
        limit: int = 10,
        instruction: str | None = None,
        timings: dict[str, float] | None = None,
    ) -> list[Passage]:
        """Search the collection with `dense`, `bm25` or `hybrid` retrieval.

        When `timings` is given, the milliseconds of `embed_query` (not for bm25) and `search` go in it.
        """
        _check_retrieval(mode)
        _nonempty(question)
        self.prepare()
        return self._search(
            self._question(question), mode, limit, instruction, {} if timings is None else timings
        )

    def _search(
        self, question: str, mode: str, limit: int, instruction: str | None, timings: dict[str, float]
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
        """Retrieve `top_k` passages, rerank them to `top_n` (when a reranker runs), and answer.

        `on_sources`, when given, is called once the sources are ranked and before the answer is
        generated, with the result so far (empty answer): a caller can show the sources first.
        """
        if top_k < 1 or top_n < 1:
            raise ValueError(f"top-k and top-n must be at least 1 (got top-k={top_k}, top-n={top_n}).")
        which = self.resolve_reranker(reranker)
        if retrieval is not None:
            _check_retrieval(retrieval)
        _nonempty(question)
        notes: list[str] = []
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        self.prepare(which)  # Milvus and every model checked before the first model loads
        question = self._question(question, notes)
        rr = None if which == "none" else self.reranker(which)
        retrieval = retrieval or ("dense" if rr else "hybrid")
        self.ensure_index()
        timings["setup"] = _ms(t0)

        sources = self._search(question, retrieval, top_k, instruction, timings)
        if rr is not None and sources:
            t = time.perf_counter()
            sources = rr.rerank(question, sources, top_n=top_n, instruction=instruction)
            timings["rerank"] = _ms(t)
        sources = sources[:top_n]
        notes += self._notes(reranker, rr, retrieval, instruction)

        result = AskResult(
            question=question,
            answer="",
            answer_backend="",
            retrieval=retrieval,
            reranker="none" if rr is None else _label(rr),
            sources=sources,
            models=self.choice.as_dict(),
            timings_ms={},
            notes=notes,
        )
        if on_sources is not None:
            on_sources(result)
        t = time.perf_counter()
        answer = self._answer(question, sources, stream, on_token, notes)
        timings["generate"] = _ms(t)
        timings["total"] = _ms(t0)
        result.answer, result.answer_backend = answer.text, answer.backend
        result.timings_ms = {k: round(v, 1) for k, v in timings.items()}
        return result

    def _notes(self, requested: str, rr: Ranker | None, retrieval: str, instruction: str | None) -> list[str]:
        """What a reader of the answer should know about how its sources were ranked."""
        notes = []
        if rr is None and requested == "auto" and self.choice.kit == "offline":
            notes.append(
                f"Offline kit: passages are ranked by {RETRIEVAL_LABELS[retrieval]}, without reranking; "
                "reranking needs the real Qwen3 reranker (RAG_MODELS=qwen3). Use --reranker stand-in to see "
                "the mechanics with random scores."
            )
        if rr is not None and rr.is_stand_in:
            notes.append("The stand-in reranker has random weights: its order and scores mean nothing.")
        if instruction:
            if retrieval == "bm25":
                why = "BM25 retrieval does not read it"
            elif not self.embedder.instruction_aware:
                why = f"{self.embedder.model_id} is not instruction-aware, so the query embedding ignores it"
            else:
                return notes
            used = "only the reranker used it" if rr is not None else "it changed nothing"
            notes.append(f"The instruction was not used for retrieval: {why}; {used}.")
        return notes

    def _answer(
        self, question: str, sources: list[Passage], stream: bool, on_token, notes: list[str]
    ) -> Answer:
        try:
            return generate(question, sources, self.settings, stream=stream, on_token=on_token)
        except LLMError as exc:
            notes.append(str(exc))
            fallback = extractive_answer(sources, reason=f"the LLM call failed: {exc}")
            # An endpoint is configured, so "set OPENAI_API_KEY" would not help: say what would.
            where = self.settings.openai_base_url or "api.openai.com"
            hint = (
                f"An LLM endpoint is configured ({where}) but its call failed, for the reason above: check "
                "the endpoint, the key and LLM_MODEL, or unset OPENAI_API_KEY and OPENAI_BASE_URL to answer "
                "without an LLM."
            )
            return Answer(fallback.text.replace(CONFIGURE_HINT, hint), LLM_FAILED_BACKEND)


def _nonempty(question: str) -> str:
    """The question stripped; an empty one refused."""
    question = (question or "").strip()
    if not question:
        raise ValueError("The question is empty: ask something, e.g. 'How is data stored in milvus?'.")
    return question


def _check_retrieval(mode: str) -> None:
    if mode not in SEARCH_MODES:
        raise ValueError(f"Unknown retrieval {mode!r}: use one of {', '.join(SEARCH_MODES)}.")


def _label(rr: Ranker) -> str:
    return f"{rr.model_id}: {STAND_IN_LABEL}" if rr.is_stand_in else rr.model_id


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
