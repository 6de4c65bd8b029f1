"""The two-stage RAG pipeline end to end: ingest a corpus, then retrieve, rerank and answer.

`RAG` wires the stages together lazily (a model is loaded the first time it is needed) and keeps
each stage swappable: the store takes vectors, the reranker takes texts, the generator takes sources.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property

from helpers.config import Settings, get_settings
from helpers.data import Chunk, DataError, chunk_documents, load_corpus
from helpers.embedding import Embedder
from helpers.generate import CONFIGURE_HINT, Answer, LLMError, Source, extractive_answer, generate
from helpers.models import (
    STAND_IN_LABEL,
    TINY_RERANKER_ID,
    ModelChoice,
    check_downloadable,
    choose_models,
    load_embedder,
    load_reranker,
)
from helpers.rerank import Reranker
from helpers.store import SEARCH_MODES, Hit, MilvusStore, connect

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
class SourceResult:
    """A retrieved passage as reported by `ask`."""

    id: str
    title: str
    source: str
    text: str
    score: float
    rerank_score: float | None = None


@dataclass
class AskResult:
    """Everything `ask` produced: the answer, its backend, the sources and stage timings."""

    question: str
    answer: str
    answer_backend: str
    retrieval: str
    reranker: str
    sources: list[SourceResult]
    models: dict
    timings_ms: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        """The CLI's JSON contract."""
        return asdict(self)


class RAG:
    """Embedder + Milvus store + optional reranker + generator, configured from `Settings`."""

    def __init__(
        self,
        settings: Settings | None = None,
        dim: int | None = None,
        choice: ModelChoice | None = None,
        embedder: Embedder | None = None,
        rerankers: dict[str, Reranker] | None = None,
    ):
        self.settings = settings or get_settings()
        self.choice = choice or choose_models(self.settings)
        self.dim = dim
        if embedder is not None:  # reuse a loaded model (tests, ablations) instead of loading it again
            self.__dict__["embedder"] = embedder
        self._rerankers: dict[str, Reranker] = rerankers if rerankers is not None else {}
        self._model_checked = False  # set once the collection is known to match the embedder

    # --- stages, loaded on first use -------------------------------------------------------------

    @cached_property
    def embedder(self) -> Embedder:
        """The embedding model for documents and queries."""
        model_id = self.choice.embedding_model
        st = load_embedder(model_id, self.settings)
        return Embedder(st, model_id, dim=self.dim, batch_size=self.settings.embed_batch_size)

    @cached_property
    def store(self) -> MilvusStore:
        """The Milvus collection (Lite file or server, from MILVUS_URI)."""
        client = connect(self.settings.milvus_uri, self.settings.milvus_token)
        return MilvusStore(client, self.settings.collection)

    def reranker(self, which: str = "qwen3") -> Reranker:
        """The real reranker (`qwen3`: the configured model) or the tiny random `stand-in`."""
        if which not in self._rerankers:
            model_id = TINY_RERANKER_ID if which == "stand-in" else self.settings.reranker_model
            check_downloadable("reranker", model_id)
            ce = load_reranker(model_id, self.settings)
            self._rerankers[which] = Reranker(
                ce, model_id, token_budget=self.settings.rerank_token_budget, is_stand_in=which == "stand-in"
            )
        return self._rerankers[which]

    def resolve_reranker(self, requested: str) -> str:
        """`auto` means the real Qwen3 reranker with the Qwen3 kit and no reranking with the offline kit."""
        if requested not in RERANKER_CHOICES:
            raise ValueError(f"Unknown reranker {requested!r}: use one of {', '.join(RERANKER_CHOICES)}.")
        if requested == "auto":
            return "qwen3" if self.choice.kit == "qwen3" else "none"
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
        chunks = chunk_documents(loaded.documents, chunker)
        if not chunks:
            raise DataError(f"The corpus {loaded.name!r} produced no passages: nothing to index.")
        store, embedder = self.store, self.embedder
        if rebuild:
            store.drop()
        if not store.exists():
            store.create(embedder.dim, embedder.model_id)
        else:
            store.check_model(embedder.model_id, embedder.dim)
        self._model_checked = True
        stored = store.existing_ids([c.id for c in chunks])
        todo = [c for c in chunks if c.id not in stored]
        self._embed_and_upsert(todo, progress)
        removed = store.delete_missing({c.id for c in chunks})
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

    def _embed_and_upsert(self, chunks: list[Chunk], progress: bool | Callable, batch: int = 64) -> None:
        from tqdm.std import tqdm

        hook = progress if callable(progress) else None
        if hook is not None:
            batch = 8  # a notebook's progress line moves every 8 passages
        parts = [chunks[i : i + batch] for i in range(0, len(chunks), batch)]
        # No rate or ETA in the bar: the same run prints the same text (notebook outputs stay stable).
        bar = tqdm(
            total=len(chunks),
            desc="embed + upsert",
            bar_format="{desc}: {n_fmt}/{total_fmt} chunks |{bar:24}| {percentage:3.0f}%",
            mininterval=0,
            disable=hook is not None or not progress or not chunks,
        )
        if hook is not None and parts:
            parts = hook(parts, len(parts), "embed + upsert, batches of 8 passages")
        try:
            for part in parts:
                self.store.upsert(part, self.embedder.encode_documents([c.text for c in part]))
                bar.update(len(part))
        finally:
            bar.close()  # ends the bar's line, so an error message that follows starts on its own line

    def ensure_index(self, corpus: str = "milvus-faq", chunker: str = "markdown") -> None:
        """Ingest when the collection is missing; otherwise check it was built by this embedder."""
        if not self.store.exists():
            print(
                f"Collection {self.settings.collection!r} is missing: ingesting {corpus} first.",
                file=sys.stderr,
            )
            self.ingest(corpus, chunker)
        else:
            self.store.check_model(self.embedder.model_id, self.embedder.dim)
            self._model_checked = True

    # --- retrieve, rerank, answer ----------------------------------------------------------------

    def question_limit(self) -> int:
        """The longest question, in characters, that `ask` and `retrieve` use (longer ones are cut)."""
        return min(QUESTION_MAX_CHARS, CHARS_PER_TOKEN * self.embedder.max_tokens)

    def _cap_question(self, question: str, notes: list[str] | None = None) -> str:
        """Reject an empty question; cut an overlong one to `question_limit()` with a warning."""
        if not question or not question.strip():
            raise ValueError("The question is empty: ask something, e.g. 'How is data stored in milvus?'.")
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

    def _check_index(self) -> None:
        """Once per instance: the collection exists and was built by this embedder at this dimension."""
        if not self._model_checked:
            self.store.load()
            self.store.check_model(self.embedder.model_id, self.embedder.dim)
            self._model_checked = True

    def retrieve(
        self,
        question: str,
        mode: str = "dense",
        limit: int = 10,
        instruction: str | None = None,
        timings: dict[str, float] | None = None,
    ) -> list[Hit]:
        """Search the collection with `dense`, `bm25` or `hybrid` retrieval.

        When `timings` is given, the milliseconds of `embed_query` (not for bm25) and `search` go in it.
        """
        if mode not in SEARCH_MODES:
            raise ValueError(f"Unknown retrieval {mode!r}: use one of {', '.join(SEARCH_MODES)}.")
        question = self._cap_question(question)
        timings = {} if timings is None else timings
        vector = None
        if mode != "bm25":
            self._check_index()
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
        on_token=None,
        on_sources: Callable[[AskResult], None] | None = None,
    ) -> AskResult:
        """Retrieve `top_k` passages, rerank them to `top_n` (when a reranker runs), and answer.

        `on_sources`, when given, is called once the sources are ranked and before the answer is
        generated, with the result so far (empty answer): a caller can show the sources first.
        """
        question = (question or "").strip()
        if not question:
            raise ValueError("The question is empty: ask something, e.g. 'How is data stored in milvus?'.")
        if top_k < 1 or top_n < 1:
            raise ValueError(f"top-k and top-n must be at least 1 (got top-k={top_k}, top-n={top_n}).")
        which = self.resolve_reranker(reranker)
        if which == "qwen3" and which not in self._rerankers:
            check_downloadable("reranker", self.settings.reranker_model)  # before any slow work
        notes: list[str] = []
        if retrieval is None:
            retrieval = "dense" if which != "none" else "hybrid"
        if which == "none" and self.choice.kit == "offline" and reranker == "auto":
            notes.append(
                f"Offline kit: passages are ranked by {RETRIEVAL_LABELS[retrieval]}, without reranking; "
                "reranking needs the real Qwen3 reranker (RAG_MODELS=qwen3). Use --reranker stand-in to see "
                "the mechanics with random scores."
            )
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        self.ensure_index()
        question = self._cap_question(question, notes)
        timings["setup"] = _ms(t0)

        hits = self.retrieve(question, retrieval, top_k, instruction, timings)

        results = [SourceResult(h.id, h.title, h.source, h.text, round(h.score, 6)) for h in hits]
        reranker_label = "none"
        if which != "none" and results:
            rr = self.reranker(which)
            t = time.perf_counter()
            ranked = rr.rerank(question, [r.text for r in results], top_n=top_n, instruction=instruction)
            timings["rerank"] = _ms(t)
            results = [
                SourceResult(**{**asdict(results[x.index]), "rerank_score": round(x.score, 6)})
                for x in ranked
            ]
            reranker_label = f"{rr.model_id}: {STAND_IN_LABEL}" if rr.is_stand_in else rr.model_id
            if rr.is_stand_in:
                notes.append("The stand-in reranker has random weights: its order and scores mean nothing.")
        else:
            results = results[:top_n]
        if instruction:
            note = self._instruction_note(retrieval, reranker_label != "none")
            if note:
                notes.append(note)

        result = AskResult(
            question=question,
            answer="",
            answer_backend="",
            retrieval=retrieval,
            reranker=reranker_label,
            sources=results,
            models=self.choice.as_dict(),
            timings_ms={},
            notes=notes,
        )
        if on_sources is not None:
            on_sources(result)
        t = time.perf_counter()
        answer = self._answer(question, results, stream, on_token, notes)
        timings["generate"] = _ms(t)
        timings["total"] = _ms(t0)
        result.answer, result.answer_backend = answer.text, answer.backend
        result.timings_ms = {k: round(v, 1) for k, v in timings.items()}
        return result

    def _instruction_note(self, retrieval: str, reranked: bool) -> str | None:
        """Say so when a task instruction was given but retrieval ignored it."""
        if retrieval == "bm25":
            why = "BM25 retrieval does not read it"
        elif not self.embedder.instruction_aware:
            why = f"{self.embedder.model_id} is not instruction-aware, so the query embedding ignores it"
        else:
            return None
        used = "only the reranker used it" if reranked else "it changed nothing"
        return f"The instruction was not used for retrieval: {why}; {used}."

    def _answer(
        self, question: str, results: list[SourceResult], stream: bool, on_token, notes: list[str]
    ) -> Answer:
        sources = [Source(r.text, r.title, r.source) for r in results]
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


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
