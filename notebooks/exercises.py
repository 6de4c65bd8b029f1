"""Self-checking exercises for the course notebooks, in the style of Kaggle's learntools.

Each notebook binds its exercises to what it computed, e.g. `q1, q2, q3 = ex01(chunks, tokenizer, limit)`;
the learner writes an answer in place of `____` and calls `q1.check(answer)`, which prints "Correct" or what
exactly is wrong, never the answer itself; `q1.hint()` and `q1.solution()` print more on request.

Every check computes its own truth from the libraries alone (a tokenizer, numpy, sentence-transformers,
pymilvus, torch) and never from the course's `helpers`, so a bug there cannot make a wrong answer pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


class _Blank:
    """The placeholder a learner replaces: `answer = ____`."""

    def __repr__(self) -> str:
        return "____"


____ = _Blank()

# The model card's Qwen3-Reranker prompt, written out here once more so the checks depend on no course code.
RERANK_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the "
    'Query and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
)
RERANK_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
DEFAULT_RERANK_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


def _blank(answer: Any) -> bool:
    """True when the answer still is, or still holds, the placeholder."""
    if isinstance(answer, _Blank):
        return True
    if isinstance(answer, dict):
        return any(_blank(k) or _blank(v) for k, v in answer.items())
    if isinstance(answer, list | tuple | set):
        return any(_blank(a) for a in answer)
    return False


class Exercise:
    """One exercise: `check(answer)`, `hint()`, `solution()`; `solved` tells whether the last check passed."""

    title = ""
    hint_text = ""
    solution_text = ""

    def __init__(self) -> None:
        self.solved = False

    def problem(self, answer: Any) -> str | None:
        """What is wrong with `answer`, in one or two sentences; None when it is right."""
        raise NotImplementedError

    def check(self, answer: Any) -> None:
        """Print "Correct" or what is wrong; never raises for a wrong answer."""
        if _blank(answer):
            self.solved = False
            print(
                f"{self.title}: not attempted yet. Replace ____ with your answer, then run this cell again."
            )
            return
        try:
            problem = self.problem(answer)
        except Exception as exc:  # the learner's code (or answer's shape) raised: say so in one line
            problem = f"checking your answer raised {type(exc).__name__}: {exc}"
        self.solved = problem is None
        print(f"✓ {self.title}: correct." if self.solved else f"✗ {self.title}: {problem}")

    def hint(self) -> None:
        """Print the hint."""
        print(f"Hint: {self.hint_text}")

    def solution(self) -> None:
        """Print a worked solution."""
        print(f"Solution:\n{self.solution_text.strip()}")


# ---- shared truths, by hand --------------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def first_relevant_rank(order: Sequence[int], relevant: Sequence[bool]) -> int | None:
    """1-based rank of the first relevant item in `order`, or None."""
    return next((r for r, i in enumerate(order, start=1) if relevant[i]), None)


def mrr10(orders: Sequence[Sequence[int]], relevant: np.ndarray) -> float:
    """MRR@10 by hand: the mean over questions of 1 / rank of the first relevant item in the top 10."""
    ranks = [first_relevant_rank(list(o)[:10], rel) for o, rel in zip(orders, relevant, strict=True)]
    return float(np.mean([1 / r if r else 0.0 for r in ranks]))


def rrf(lists: Sequence[Sequence[str]], k: int) -> dict[str, float]:
    """Reciprocal rank fusion by hand: each id scores the sum of 1 / (k + rank) over the lists it is in."""
    fused: dict[str, float] = {}
    for ids in lists:
        for rank, i in enumerate(ids, start=1):
            fused[i] = fused.get(i, 0.0) + 1 / (k + rank)
    return fused


def _close(a: float, b: float, tol: float = 1e-3) -> bool:
    return abs(float(a) - float(b)) <= tol


class Stored:
    """Every row of a Milvus collection (ids, texts, sources, titles, dense vectors), read with `query`."""

    def __init__(self, client, collection: str):
        rows = client.query(collection, filter="", output_fields=["id", "text", "source", "title", "dense"])
        self.ids = [r["id"] for r in rows]
        self.texts = [r["text"] for r in rows]
        self.sources = [r["source"] for r in rows]
        self.titles = [r["title"] for r in rows]
        self.vectors = np.array([r["dense"] for r in rows], dtype=np.float64)
        self.client, self.collection = client, collection

    def dense_ids(self, query_vector: np.ndarray, depth: int, mask: np.ndarray | None = None) -> list[str]:
        """The exact top `depth` ids by inner product (numpy), optionally only rows where `mask` holds."""
        scores = self.vectors @ np.asarray(query_vector, dtype=np.float64)
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        order = [i for i in np.argsort(-scores, kind="stable") if np.isfinite(scores[i])]
        return [self.ids[i] for i in order[:depth]]

    def bm25_ids(self, text: str, depth: int) -> list[str]:
        """Milvus' own BM25 ranking of the question, `depth` deep."""
        hits = self.client.search(
            self.collection,
            data=[text],
            anns_field="sparse",
            limit=depth,
            search_params={"metric_type": "BM25"},
        )[0]
        return [h["id"] for h in hits]

    def relevant(self, labels: Sequence[str]) -> np.ndarray:
        """One flag per row: its text holds one of the question's labels."""
        return np.array([any(label in t for label in labels) for t in self.texts])


def load_labelled(path: Path) -> list[dict]:
    """The labelled questions of a JSONL file, read with the json module alone."""
    import json

    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


# ---- 01 Chunking -------------------------------------------------------------------------------------------


class TokenCap(Exercise):
    title = "Exercise 1 (cap passages by tokens)"
    hint_text = (
        "For each passage: if `len(tokenizer(text)['input_ids']) <= limit` keep it whole; "
        "otherwise split its "
        "body (after the first blank line) at '\\n\\n' and add paragraphs to a part while "
        "heading + part still "
        "fits; start every new part with the heading."
    )
    solution_text = """
def split_by_tokens(text, max_tokens):
    if len(tokenizer(text)["input_ids"]) <= max_tokens:
        return [text]
    heading, _, body = text.partition("\\n\\n")
    parts, current = [], []
    for para in body.split("\\n\\n"):
        candidate = heading + "\\n\\n" + "\\n\\n".join([*current, para])
        if current and len(tokenizer(candidate)["input_ids"]) > max_tokens:
            parts.append(current)
            current = []
        current.append(para)
    parts.append(current)
    return [heading + "\\n\\n" + "\\n\\n".join(p) for p in parts]

capped = [part for c in chunks for part in split_by_tokens(c.text, limit)]
"""

    def __init__(self, texts: Sequence[str], tokenizer, limit: int):
        super().__init__()
        self.texts, self.tokenizer, self.limit = list(texts), tokenizer, limit

    def n(self, text: str) -> int:
        return len(self.tokenizer(text)["input_ids"])

    def problem(self, answer: Any) -> str | None:
        if not isinstance(answer, list) or not all(isinstance(t, str) for t in answer):
            return "give a list of strings, every part of every passage."
        over = [t for t in answer if self.n(t) > self.limit]
        if over:
            return (
                f"{len(over)} part(s) are still longer than {self.limit} tokens (the first "
                f"has {self.n(over[0])})."
            )
        fitting = [t for t in self.texts if self.n(t) <= self.limit]
        missing = [t for t in fitting if t not in answer]
        if missing:
            return (
                f"{len(missing)} passage(s) that already fit the limit are missing or "
                f"changed: keep them whole."
            )
        for text in self.texts:
            if self.n(text) <= self.limit:
                continue
            heading = text.partition("\n\n")[0]
            parts = [t for t in answer if t.startswith(heading + "\n\n") and t not in fitting]
            if len(parts) < 2:
                return (
                    f"the long passage {heading[:50]!r} is not split into parts that start with its heading."
                )
            body = " ".join(" ".join(p.partition("\n\n")[2].split()) for p in parts)
            if body != " ".join(text.partition("\n\n")[2].split()):
                return (
                    f"the parts of {heading[:50]!r} do not hold its text once, in order: "
                    f"text is lost or doubled."
                )
        return None


class Truncated(Exercise):
    title = "Exercise 2 (the text the model never reads)"
    hint_text = (
        "`ids = tokenizer(text)['input_ids']`; a passage is cut when `len(ids) > limit`. The model keeps the "
        "first `limit` tokens, the last of them a special token: decode `ids[limit - 1:]` with "
        "`skip_special_tokens=True`."
    )
    solution_text = """
unread = {}
for i, c in enumerate(chunks):
    ids = tokenizer(c.text)["input_ids"]
    if len(ids) > limit:
        unread[i] = tokenizer.decode(ids[limit - 1 :], skip_special_tokens=True)
"""

    def __init__(self, texts: Sequence[str], tokenizer, limit: int):
        super().__init__()
        self.texts, self.tokenizer, self.limit = list(texts), tokenizer, limit

    def truth(self) -> dict[int, str]:
        """What truncation=True keeps (the library's own cut), and the rest decoded."""
        out = {}
        for i, text in enumerate(self.texts):
            full = self.tokenizer(text)["input_ids"]
            kept = self.tokenizer(text, truncation=True, max_length=self.limit)["input_ids"]
            if len(full) > len(kept):
                out[i] = self.tokenizer.decode(full[len(kept) - 1 :], skip_special_tokens=True)
        return out

    def problem(self, answer: Any) -> str | None:
        if not isinstance(answer, dict):
            return "give a dict {passage index: the text the model never reads}."
        truth = self.truth()
        if set(answer) != set(truth):
            extra, missing = sorted(set(answer) - set(truth)), sorted(set(truth) - set(answer))
            return (
                f"wrong passages: {len(missing)} cut passage(s) missing, {len(extra)} listed "
                f"that fit the limit."
            )
        for i, text in truth.items():
            if " ".join(str(answer[i]).split()) != " ".join(text.split()):
                read = self.tokenizer.decode(
                    self.tokenizer(self.texts[i])["input_ids"][: self.limit], skip_special_tokens=True
                )
                if " ".join(str(answer[i]).split()) == " ".join(read.split()):
                    return f"passage {i}: that is the part the model reads; give the part after the cut."
                return (
                    f"passage {i}: the unread text differs; the cut is after the first {self.limit} tokens."
                )
        return None


class FolderProblems(Exercise):
    title = "Exercise 3 (chunk another folder)"
    hint_text = (
        "`docs = load_corpus(str(SAMPLE_DIR)).documents`; the naive pieces are "
        "`d.text.split('# ')` for every "
        "document; count those that start with '---' (front matter) and those whose text ends with '#' once "
        "trailing whitespace is stripped."
    )
    solution_text = """
docs = load_corpus(str(SAMPLE_DIR)).documents
pieces = [p for d in docs for p in d.text.split("# ")]
folder_counts = {
    "naive pieces": len(pieces),
    "front matter": sum(p.startswith("---") for p in pieces),
    "trailing '#'": sum(p.rstrip().endswith("#") for p in pieces),
}
"""
    KEYS = ("naive pieces", "front matter", "trailing '#'")

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = Path(folder)

    def truth(self) -> dict[str, int]:
        texts = [p.read_text(encoding="utf-8") for p in sorted(self.folder.rglob("*.md"))]
        pieces = [piece for t in texts for piece in t.split("# ")]
        return {
            "naive pieces": len(pieces),
            "front matter": sum(p.startswith("---") for p in pieces),
            "trailing '#'": sum(p.rstrip().endswith("#") for p in pieces),
        }

    def problem(self, answer: Any) -> str | None:
        if not isinstance(answer, dict) or set(answer) != set(self.KEYS):
            return f"give a dict with exactly the keys {list(self.KEYS)}."
        truth = self.truth()
        if answer["naive pieces"] != truth["naive pieces"]:
            return (
                "the number of naive pieces is off: split every file's whole text on '# ', "
                "as the tutorial does."
            )
        wrong = [k for k in self.KEYS[1:] if answer[k] != truth[k]]
        if wrong:
            return f"the count of {wrong[0]!r} is off: test each naive piece, not each file or passage."
        return None


def ex01(texts: Sequence[str], tokenizer, limit: int, folder: Path) -> tuple[Exercise, Exercise, Exercise]:
    """Notebook 01's three exercises, bound to its passages, tokenizer, limit and a markdown folder."""
    return TokenCap(texts, tokenizer, limit), Truncated(texts, tokenizer, limit), FolderProblems(folder)


# ---- 02 Embeddings -----------------------------------------------------------------------------------------


def _orders(Q: np.ndarray, P: np.ndarray) -> np.ndarray:
    return np.argsort(
        -(np.asarray(Q, dtype=np.float64) @ np.asarray(P, dtype=np.float64).T), axis=1, kind="stable"
    )


class OwnInstruction(Exercise):
    title = "Exercise 1 (your own instruction)"
    hint_text = (
        "For each task: `Q = model.encode_query(query_texts, prompt=f'Instruct: {task}\\nQuery:', "
        "normalize_embeddings=True)`, then `retrieval_metrics(Q, P, relevant)['MRR@10']`. Use "
        "at least one task "
        "that fits the data and one that does not."
    )
    solution_text = """
tasks = [
    "Given an error message, retrieve the troubleshooting passage that fixes it",
    "Classify the sentiment of a movie review",
]
instruction_mrr = {}
for task in tasks:
    Q_task = model.encode_query(query_texts, prompt=f"Instruct: {task}\\nQuery:", normalize_embeddings=True)
    instruction_mrr[task] = retrieval_metrics(Q_task, P, relevant)["MRR@10"]
"""

    def __init__(self, model, query_texts: Sequence[str], P: np.ndarray, relevant: np.ndarray):
        super().__init__()
        self.model, self.query_texts, self.P, self.relevant = model, list(query_texts), P, relevant

    def mrr(self, prompt: str) -> float:
        Q = self.model.encode_query(self.query_texts, prompt=prompt, normalize_embeddings=True)
        return mrr10(_orders(Q, self.P), self.relevant)

    def problem(self, answer: Any) -> str | None:
        if not isinstance(answer, dict) or len(answer) < 2:
            return (
                "give a dict {task description: MRR@10} with at least two tasks (one that "
                "fits, one that does not)."
            )
        for task, value in answer.items():
            if not isinstance(task, str) or task.startswith("Instruct:"):
                return (
                    "the keys are task descriptions alone; the notebook adds 'Instruct: "
                    "…\\nQuery:' around them."
                )
            if not 0 <= float(value) <= 1:
                return f"MRR@10 lies between 0 and 1; {task[:40]!r} has {value}."
            if not _close(value, self.mrr(f"Instruct: {task}\nQuery:")):
                if _close(value, self.mrr(task)):
                    return f"{task[:40]!r}: the prompt must be Qwen3's format, 'Instruct: {{task}}\\nQuery:'."
                return f"{task[:40]!r}: your MRR@10 differs from the one this task's prompt gives."
        return None


class MatryoshkaChoice(Exercise):
    title = "Exercise 2 (a Matryoshka size)"
    hint_text = (
        "Find the best MRR@10 in the `matryoshka` table's row of the full size; the answer is the smallest "
        "dimension whose MRR@10 is at least 98% of it. Its memory: 4 bytes x dim x 10,000,000, "
        "in MiB (2**20)."
    )
    solution_text = """
full = matryoshka.loc[full_dim, "MRR@10"]
my_dim = int(matryoshka.index[matryoshka["MRR@10"] >= 0.98 * full].min())
my_mib = 4 * my_dim * 10_000_000 / 2**20
matryoshka_choice = (my_dim, my_mib)
"""

    def __init__(
        self, Q: np.ndarray, P: np.ndarray, relevant: np.ndarray, dims: Sequence[int], budget: float = 0.98
    ):
        super().__init__()
        self.Q, self.P, self.relevant, self.dims, self.budget = Q, P, relevant, list(dims), budget

    def mrr(self, dim: int) -> float:
        return mrr10(_orders(_unit(self.Q[:, :dim]), _unit(self.P[:, :dim])), self.relevant)

    def problem(self, answer: Any) -> str | None:
        if not isinstance(answer, tuple) or len(answer) != 2:
            return "give a pair (dimension, MiB for 10 million vectors)."
        dim, mib = answer
        if int(dim) not in self.dims:
            return f"choose one of the measured sizes {self.dims}."
        full = self.mrr(max(self.dims))
        ok = [d for d in self.dims if self.mrr(d) >= self.budget * full - 1e-12]
        if self.mrr(int(dim)) < self.budget * full - 1e-12:
            return (
                f"{dim} dimensions fall below {self.budget:.0%} of the full size's MRR@10 "
                f"(cut, then re-normalise)."
            )
        if int(dim) != min(ok):
            return f"a smaller size than {dim} also stays within {self.budget:.0%}: take the smallest."
        if not math.isclose(float(mib), 4 * int(dim) * 10_000_000 / 2**20, rel_tol=1e-3):
            return (
                "the memory is off: a float32 number is 4 bytes, a vector 4 x dim, and a MiB is 2**20 bytes."
            )
        return None


class Multilingual(Exercise):
    title = "Exercise 3 (one question in several languages)"
    hint_text = (
        "Write the first labelled question in three or more languages; for each, `q = "
        "model.encode_query([text], "
        "normalize_embeddings=True)`, `order = np.argsort(-(q @ P.T)[0])`, and the rank is 1 + "
        "the position of "
        "the first passage with `relevant[0][passage]`."
    )
    solution_text = """
translations = [query_texts[0], "<the same question in German>", "<… in Spanish>"]
ranks = {}
for text in translations:
    q = model.encode_query([text], normalize_embeddings=True)
    order = np.argsort(-(q @ P.T)[0])
    ranks[text] = 1 + next(r for r, j in enumerate(order) if relevant[0][j])
"""

    def __init__(self, model, P: np.ndarray, relevant_row: np.ndarray):
        super().__init__()
        self.model, self.P, self.relevant_row = model, P, np.asarray(relevant_row)

    def problem(self, answer: Any) -> str | None:
        if not isinstance(answer, dict) or len(answer) < 3:
            return "give a dict {question text: rank of its right passage} for three or more versions."
        if len(set(answer)) < 3 or any(not str(t).strip() for t in answer):
            return "write three different, non-empty versions of the question."
        for text, rank in answer.items():
            q = self.model.encode_query([text], normalize_embeddings=True)
            order = _orders(q, self.P)[0]
            truth = first_relevant_rank(order, self.relevant_row)
            if rank == truth - 1:
                return f"{text[:40]!r}: ranks start at 1 (the best passage is rank 1), not 0."
            if rank != truth:
                return f"{text[:40]!r}: the rank of its right passage is not {rank}."
        return None


class RightPadding(Exercise):
    title = "Exercise 4 (right padding, [:, -1])"
    hint_text = (
        "For each batch `[my_text, *others]`: `vectors, mask = last_position(batch, 'right')`; the cosine is "
        "`vectors[0] @ alone`, where `alone = last_position([my_text], 'left')[0][0]`."
    )
    solution_text = """
alone = last_position([my_text], "left")[0][0]
padding_cosines = [float(last_position([my_text, *others], "right")[0][0] @ alone) for others in my_batches]
"""

    def __init__(self, tokenizer, model, my_text: str, my_batches: Sequence[Sequence[str]]):
        super().__init__()
        self.tokenizer, self.model = tokenizer, model
        self.my_text, self.my_batches = my_text, [list(b) for b in my_batches]

    def last(self, texts: list[str], side: str) -> np.ndarray:
        import torch

        old = self.tokenizer.padding_side
        try:
            self.tokenizer.padding_side = side
            batch = self.tokenizer(texts, padding=True, return_tensors="pt").to(self.model.device)
            with torch.no_grad():
                hidden = self.model(**batch).last_hidden_state[:, -1].float().cpu().numpy()
        finally:
            self.tokenizer.padding_side = old
        return _unit(hidden)

    def problem(self, answer: Any) -> str | None:
        if not isinstance(answer, list | tuple) or len(answer) != len(self.my_batches):
            return f"give one cosine per batch of `my_batches` ({len(self.my_batches)})."
        if len(self.my_batches) < 2:
            return "use at least two batches, with different amounts of padding."
        if any(not -1 - 1e-6 <= float(c) <= 1 + 1e-6 for c in answer):
            return "a cosine lies between -1 and 1: normalise both vectors before the dot product."
        alone = self.last([self.my_text], "left")[0]
        truth = [float(self.last([self.my_text, *b], "right")[0] @ alone) for b in self.my_batches]
        if all(_close(c, 1, 1e-4) for c in answer) and not all(_close(t, 1, 1e-4) for t in truth):
            return (
                "every cosine is 1: that is left padding (or the last real token). Pad on "
                "the right, take [:, -1]."
            )
        for n, (c, t) in enumerate(zip(answer, truth, strict=True)):
            if not _close(c, t, 1e-3):
                return (
                    f"batch {n}: the cosine differs from right padding with [:, -1] against the text alone."
                )
        return None


def ex02(model, query_texts, P, Q_model, relevant, dims) -> tuple[Exercise, Exercise, Exercise]:
    """Notebook 02's core exercises, bound to its model, vectors and labels (exercise 4: `RightPadding`)."""
    return (
        OwnInstruction(model, query_texts, P, relevant),
        MatryoshkaChoice(Q_model, P, relevant, dims),
        Multilingual(model, P, relevant[0]),
    )


# ---- 03 Milvus indexing ------------------------------------------------------------------------------------


class FusionDepth(Exercise):
    title = "Exercise 1 (fusion depth)"
    hint_text = (
        "Two `AnnSearchRequest`s as in section 9, but with `limit=DEPTH` each; `hybrid_search(..., "
        "ranker=RRFRanker(RRF_K), limit=TOP_K)`; the answer is the list of the hits' ids."
    )
    solution_text = """
ef = {"metric_type": "IP", "params": {"ef": max(SEARCH_EF, DEPTH)}}
deep_dense = AnnSearchRequest(data=[query_vector.tolist()], anns_field="dense", param=ef, limit=DEPTH)
deep_bm25 = AnnSearchRequest(data=[QUESTION], anns_field="sparse", param={"metric_type": "BM25"}, limit=DEPTH)
deep = client.hybrid_search(COLLECTION, [deep_dense, deep_bm25], ranker=RRFRanker(RRF_K), limit=TOP_K)[0]
deep_ids = [h["id"] for h in deep]
"""

    def __init__(self, client, collection, query_vector, question: str, depth: int, top_k: int, rrf_k: int):
        super().__init__()
        self.stored = Stored(client, collection)
        self.query_vector, self.question = query_vector, question
        self.depth, self.top_k, self.rrf_k = depth, top_k, rrf_k

    def fused(self, depth: int) -> dict[str, float]:
        lists = [self.stored.dense_ids(self.query_vector, depth), self.stored.bm25_ids(self.question, depth)]
        return rrf(lists, self.rrf_k)

    @staticmethod
    def is_top(ids: list[str], fused: dict[str, float], n: int) -> bool:
        best = sorted(fused.values(), reverse=True)[:n]
        return len(ids) == len(set(ids)) == len(best) and np.allclose(
            sorted((fused.get(i, -1) for i in ids), reverse=True), best, atol=1e-9
        )

    def problem(self, answer: Any) -> str | None:
        ids = list(answer) if isinstance(answer, list | tuple) else None
        if ids is None or len(ids) != self.top_k:
            return f"give the list of the {self.top_k} hybrid hits' ids."
        if self.is_top(ids, self.fused(self.depth), self.top_k):
            return None
        if self.is_top(ids, self.fused(self.top_k), self.top_k):
            return f"that is the fusion of {self.top_k}-deep lists; give each request limit={self.depth}."
        return f"these are not the top {self.top_k} of RRF (k={self.rrf_k}) over the dense and BM25 lists."


class RrfK(Exercise):
    title = "Exercise 2 (RRF's k)"
    hint_text = (
        "For every labelled question: dense and BM25 requests with `limit=TOP_K`, `hybrid_search` with "
        "`RRFRanker(k)` and `limit=TOP_K`; a question counts when one of its hits' text holds one of its "
        "`relevant` headings. The share is that count over all questions."
    )
    solution_text = """
lines = nb.questions.read_text(encoding="utf-8").splitlines()
labelled = [json.loads(line) for line in lines if line.strip()]
vectors = embedder.encode_queries([q["query"] for q in labelled])
hybrid_share = {}
for k in K_VALUES:
    found = 0
    for q, v in zip(labelled, vectors):
        reqs = [
            AnnSearchRequest([v.tolist()], "dense", {"metric_type": "IP"}, TOP_K),
            AnnSearchRequest([q["query"]], "sparse", {"metric_type": "BM25"}, TOP_K),
        ]
        hits = client.hybrid_search(
            COLLECTION, reqs, ranker=RRFRanker(k), limit=TOP_K, output_fields=["text"]
        )[0]
        found += any(label in h["entity"]["text"] for h in hits for label in q["relevant"])
    hybrid_share[k] = found / len(labelled)
"""

    def __init__(
        self, client, collection, questions: Sequence[dict], vectors: np.ndarray, k_values, top_k: int
    ):
        super().__init__()
        self.stored = Stored(client, collection)
        self.questions, self.vectors = list(questions), vectors
        self.k_values, self.top_k = list(k_values), top_k

    def share(self, k: int) -> float:
        found = 0
        for q, v in zip(self.questions, self.vectors, strict=True):
            lists = [self.stored.dense_ids(v, self.top_k), self.stored.bm25_ids(q["query"], self.top_k)]
            fused = rrf(lists, k)
            best = sorted(fused.values(), reverse=True)[: self.top_k]
            cutoff = best[-1]
            # ties at the cut-off: a relevant passage tied there counts only if all tied ones fit
            top = [i for i, s in fused.items() if s > cutoff + 1e-12]
            tied = [i for i, s in fused.items() if abs(s - cutoff) <= 1e-12]
            rel = self.stored.relevant(q["relevant"])
            is_rel = {self.stored.ids[n]: bool(rel[n]) for n in range(len(rel))}
            found += any(is_rel.get(i, False) for i in top) or (
                len(top) + len(tied) <= self.top_k and any(is_rel.get(i, False) for i in tied)
            )
        return found / len(self.questions)

    def problem(self, answer: Any) -> str | None:
        if not isinstance(answer, dict) or sorted(answer) != sorted(self.k_values):
            return f"give a dict {{k: share}} for k in {self.k_values}."
        if any(v > 1 for v in answer.values()):
            return "give the share of questions (between 0 and 1), not their count."
        for k in self.k_values:
            if not _close(answer[k], self.share(k), 1.5 / len(self.questions)):
                return f"k={k}: the share differs from RRF over {self.top_k}-deep dense and BM25 lists."
        return None


class FilteredSearch(Exercise):
    title = "Exercise 3 (a filtered search)"
    hint_text = (
        "`client.search(COLLECTION, data=[query_vector.tolist()], anns_field='dense', limit=TOP_K, "
        "filter=f'source == \"{FILTER_SOURCE}\"', search_params={'metric_type': 'IP'})`, then the hits' ids."
    )
    solution_text = """
found = client.search(COLLECTION, data=[query_vector.tolist()], anns_field="dense", limit=TOP_K,
                      filter=f'source == "{FILTER_SOURCE}"', search_params={"metric_type": "IP"})[0]
filtered_ids = [h["id"] for h in found]
"""

    def __init__(self, client, collection, query_vector, source: str, top_k: int):
        super().__init__()
        self.stored = Stored(client, collection)
        self.query_vector, self.source, self.top_k = query_vector, source, top_k

    def problem(self, answer: Any) -> str | None:
        ids = list(answer) if isinstance(answer, list | tuple) else None
        if ids is None:
            return "give the list of the hits' ids."
        source_of = dict(zip(self.stored.ids, self.stored.sources, strict=True))
        if any(source_of.get(i) != self.source for i in ids):
            return f"some hits come from another file than {self.source!r}: pass the filter to `search`."
        mask = np.array([s == self.source for s in self.stored.sources])
        truth = self.stored.dense_ids(self.query_vector, self.top_k, mask)
        if len(ids) != len(truth):
            return f"expected {len(truth)} hits (TOP_K, or fewer when the file has fewer passages)."
        if ids != truth:
            return "the hits obey the filter but are not the best ones within it, in order."
        return None


def ex03(
    client, collection, query_vector, question, depth, top_k, rrf_k, questions, vectors, k_values, source
):
    """Notebook 03's three exercises, bound to its collection and question."""
    return (
        FusionDepth(client, collection, query_vector, question, depth, top_k, rrf_k),
        RrfK(client, collection, questions, vectors, k_values, top_k),
        FilteredSearch(client, collection, query_vector, source, top_k),
    )


# ---- 04 Reranking ------------------------------------------------------------------------------------------


def rerank_prompt(query: str, doc: str, instruction: str) -> str:
    """The model card's prompt for one pair."""
    return RERANK_PREFIX + f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}" + RERANK_SUFFIX


class PYesByHand(Exercise):
    title = "Exercise 1 (P(yes) by hand, your instruction)"
    hint_text = (
        "Load `AutoModelForCausalLM` from `path`; tokenize `[prompt(QUESTION, d, "
        "CUSTOM_INSTRUCTION) for d in "
        "docs]` with left padding; `logits = model(**batch, logits_to_keep=1).logits[:, -1, :]`; "
        "softmax over `[logits[:, no_id], logits[:, yes_id]]`, column 1."
    )
    solution_text = """
lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(nb.device).eval()
batch = tokenizer([prompt(QUESTION, d, CUSTOM_INSTRUCTION) for d in docs], padding=True,
                  return_tensors="pt").to(lm.device)
with torch.no_grad():
    logits = lm(**batch, logits_to_keep=1).logits[:, -1, :]
two_way = torch.stack([logits[:, no_id], logits[:, yes_id]], dim=1)
custom_p_yes = torch.softmax(two_way, dim=1)[:, 1].cpu().numpy()
"""

    def __init__(self, cross_encoder, question: str, docs: Sequence[str], instruction: str):
        super().__init__()
        self.ce, self.question, self.docs, self.instruction = cross_encoder, question, list(docs), instruction

    def predict(self, instruction: str) -> np.ndarray:
        import torch

        return self.ce.predict(
            [(self.question, d) for d in self.docs],
            activation_fn=torch.nn.Sigmoid(),
            processing_kwargs={"chat_template": {"instruction": instruction}},
            show_progress_bar=False,
        )

    def problem(self, answer: Any) -> str | None:
        values = np.asarray(answer, dtype=float).ravel()
        if len(values) != len(self.docs):
            return f"give one P(yes) per candidate ({len(self.docs)})."
        truth = self.predict(self.instruction)
        if np.allclose(values, truth, atol=1e-4):
            return None
        if np.allclose(1 - values, truth, atol=1e-4):
            return "these are P(no): take column 1 of the softmax over [no, yes]."
        if np.allclose(values, self.predict(DEFAULT_RERANK_INSTRUCTION), atol=1e-4):
            return "these are the scores under the default instruction: pass CUSTOM_INSTRUCTION to prompt()."
        if (values < 0.01).all():
            return (
                "every value is tiny: the softmax must run over the two logits [no, yes], not the vocabulary."
            )
        return "your P(yes) differ from CrossEncoder.predict with a sigmoid, for the same prompt."


class CandidateTokens(Exercise):
    title = "Exercise 2 (how many candidates)"
    hint_text = (
        "`deep = rag.retrieve(QUESTION, 'dense', max(K_SIZES))`; for each k, sum "
        "`len(tokenizer(prompt(QUESTION, h.text)).input_ids)` over `deep[:k]`: every token of every prompt."
    )
    solution_text = """
deep = rag.retrieve(QUESTION, "dense", max(K_SIZES))
lengths = [len(tokenizer(prompt(QUESTION, h.text)).input_ids) for h in deep]
prompt_tokens = {k: sum(lengths[:k]) for k in K_SIZES}
"""

    def __init__(self, tokenizer, question: str, docs: Sequence[str], k_sizes: Sequence[int]):
        super().__init__()
        self.tokenizer, self.question, self.docs, self.k_sizes = (
            tokenizer,
            question,
            list(docs),
            list(k_sizes),
        )

    def tokens(self, texts: Sequence[str]) -> int:
        return sum(len(self.tokenizer(t).input_ids) for t in texts)

    def problem(self, answer: Any) -> str | None:
        if not isinstance(answer, dict) or sorted(answer) != sorted(self.k_sizes):
            return f"give a dict {{k: prompt tokens}} for k in {self.k_sizes}."
        for k in self.k_sizes:
            docs = self.docs[:k]
            truth = self.tokens([rerank_prompt(self.question, d, DEFAULT_RERANK_INSTRUCTION) for d in docs])
            if answer[k] == truth:
                continue
            if answer[k] == sum(
                len(rerank_prompt(self.question, d, DEFAULT_RERANK_INSTRUCTION)) for d in docs
            ):
                return f"k={k}: that counts characters; count the tokenizer's input_ids."
            if answer[k] == self.tokens(docs):
                return f"k={k}: that counts the passages alone; the model reads the whole prompt around each."
            return f"k={k}: the token count differs from the prompts of the top {k} dense candidates."
        return None


class RerankOrder(Exercise):
    title = "Exercise 3 (rerank the hybrid candidates)"
    hint_text = (
        "`hybrid = rag.retrieve(QUESTION, 'hybrid', TOP_K)`; `scores = "
        "reranker.score(QUESTION, [h.text for h in "
        "hybrid])`; the answer is the ids sorted by score, highest first."
    )
    solution_text = """
hybrid = rag.retrieve(QUESTION, "hybrid", TOP_K)
scores = reranker.score(QUESTION, [h.text for h in hybrid])
reranked_ids = [hybrid[i].id for i in np.argsort(-scores, kind="stable")]
"""

    def __init__(self, cross_encoder, question: str, candidates: Sequence[tuple[str, str]]):
        super().__init__()
        self.ce, self.question, self.candidates = cross_encoder, question, list(candidates)  # (id, text)

    def problem(self, answer: Any) -> str | None:
        import torch

        ids = list(answer) if isinstance(answer, list | tuple) else None
        if ids is None or sorted(ids) != sorted(i for i, _ in self.candidates):
            return "give the ids of the hybrid candidates, each once, in the reranked order."
        scores = self.ce.predict(
            [(self.question, t) for _, t in self.candidates],
            activation_fn=torch.nn.Sigmoid(),
            processing_kwargs={"chat_template": {"instruction": DEFAULT_RERANK_INSTRUCTION}},
            show_progress_bar=False,
        )
        score_of = {i: float(s) for (i, _), s in zip(self.candidates, scores, strict=True)}
        given = [score_of[i] for i in ids]
        if given == sorted(given, reverse=True):
            return None
        if given == sorted(given):
            return "the order is reversed: the highest P(yes) comes first."
        if ids == [i for i, _ in self.candidates]:
            return "that is hybrid search's order; sort the candidates by the reranker's score."
        return "the ids are not in order of the reranker's P(yes)."


def ex04(cross_encoder, tokenizer, question, docs, custom_instruction, deep_docs, k_sizes, hybrid_candidates):
    """Notebook 04's three exercises, bound to its CrossEncoder, tokenizer and candidates."""
    return (
        PYesByHand(cross_encoder, question, docs, custom_instruction),
        CandidateTokens(tokenizer, question, deep_docs, k_sizes),
        RerankOrder(cross_encoder, question, hybrid_candidates),
    )


# ---- 05 Generation -----------------------------------------------------------------------------------------


class RefusalThreshold(Exercise):
    title = "Exercise 1 (refuse when nothing answers)"
    hint_text = (
        "Take some labelled questions of every language (`lang`), compute each one's best "
        "dense cosine and the "
        "off-topic ones' too; put the threshold above the highest off-topic score, and list the in-corpus "
        "questions whose best score falls below it."
    )
    solution_text = """
by_lang = {}
for q in load_questions(nb.questions):
    by_lang.setdefault(q.lang, []).append(q.query)
on_topic = [text for texts in by_lang.values() for text in texts[:3]]
best = {q: rag.retrieve(q, "dense", 1)[0].score for q in on_topic + OFF_TOPIC}
threshold = max(best[q] for q in OFF_TOPIC) + 1e-4
wrongly_refused = [q for q in on_topic if best[q] < threshold]
refusal = (threshold, on_topic, wrongly_refused)
"""

    def __init__(
        self,
        query_vectors: Callable[[list[str]], np.ndarray],
        stored: Stored,
        languages: dict[str, str],
        off_topic: Sequence[str],
    ):
        super().__init__()
        self.embed, self.stored = query_vectors, stored
        self.languages, self.off_topic = languages, list(off_topic)

    def best(self, texts: list[str]) -> dict[str, float]:
        vectors = self.embed(texts)
        return {
            t: float((self.stored.vectors @ np.asarray(v, dtype=np.float64)).max())
            for t, v in zip(texts, vectors, strict=True)
        }

    def problem(self, answer: Any) -> str | None:
        if not isinstance(answer, tuple) or len(answer) != 3:
            return "give (threshold, in-corpus questions used, in-corpus questions wrongly refused)."
        threshold, on_topic, refused = float(answer[0]), list(answer[1]), list(answer[2])
        unknown = [q for q in on_topic if q not in self.languages]
        if unknown:
            return (
                f"{len(unknown)} in-corpus question(s) are not labelled questions: take them "
                f"from nb.questions."
            )
        missing = sorted(set(self.languages.values()) - {self.languages[q] for q in on_topic})
        if missing:
            return f"no in-corpus question in {', '.join(missing)}: calibrate on every language."
        off = self.best(self.off_topic)
        passing = [q for q, s in off.items() if s >= threshold]
        if passing:
            return f"{len(passing)} off-topic question(s) score above the threshold and would reach the LLM."
        on = self.best(on_topic)
        truth = {q for q, s in on.items() if s < threshold}
        if set(refused) != truth:
            return (
                f"the wrongly refused list is off: {len(truth - set(refused))} missing, "
                f"{len(set(refused) - truth)} that pass the threshold."
            )
        return None


class CitationChecker(Exercise):
    title = "Exercise 2 (a citation checker)"
    hint_text = (
        "`re.findall(r'\\[([^\\[\\]]+)\\](?!\\()', answer)` finds every bracketed citation and "
        "skips markdown "
        "links `[text](url)`; keep those not in `titles`."
    )
    solution_text = """
def check_citations(answer, titles):
    return [c for c in re.findall(r"\\[([^\\[\\]]+)\\](?!\\()", answer) if c not in titles]
"""
    TITLES: ClassVar[list[str]] = ["Where does Milvus store data?", "How does Milvus flush data?"]
    CASES: ClassVar[
        list[tuple[str, list[str]]]
    ] = [  # (answer, the citations that name no source): written by hand
        ("Object storage [Where does Milvus store data?].", []),
        ("It is kept in RAM [How does Milvus cache data?].", ["How does Milvus cache data?"]),
        ("Both [Where does Milvus store data?][How does Milvus flush data?].", []),
        ("Two wrong [A?][B?] and one right [How does Milvus flush data?].", ["A?", "B?"]),
        ("See [MinIO](https://min.io/) [Where does Milvus store data?].", []),
        ("No citation at all.", []),
    ]

    def problem(self, answer: Any) -> str | None:
        if not callable(answer):
            return "give your function check_citations(answer, titles) itself."
        for text, expected in self.CASES:
            got = answer(text, list(self.TITLES))
            if _blank(got):
                return "your function still returns ____."
            if list(got) != expected:
                if "](" in text:
                    return "a markdown link [text](url) is not a citation: skip brackets followed by '('."
                if "][" in text:
                    return "two citations side by side, [a][b], are two citations: find each bracket pair."
                return f"on {text!r} your function returns {list(got)!r}."
        return None


class SourceFilter(Exercise):
    title = "Exercise 3 (a source filter)"
    hint_text = (
        "`rag.store.client.search(rag.store.collection, data=[vector.tolist()], anns_field='dense', "
        "filter=f'source == \"{FILTER_SOURCE}\"', limit=TOP_N, output_fields=['title'], "
        "search_params={'metric_type': 'IP'})`, then the hits' titles in order."
    )
    solution_text = """
vector = rag.embedder.encode_queries([QUESTION])[0]
res = rag.store.client.search(rag.store.collection, data=[vector.tolist()], anns_field="dense",
                              filter=f'source == "{FILTER_SOURCE}"', limit=TOP_N, output_fields=["title"],
                              search_params={"metric_type": "IP"})
filtered_titles = [h["entity"]["title"] for h in res[0]]
"""

    def __init__(self, stored: Stored, query_vector: np.ndarray, source: str, top_n: int):
        super().__init__()
        self.stored, self.query_vector, self.source, self.top_n = stored, query_vector, source, top_n

    def problem(self, answer: Any) -> str | None:
        titles = list(answer) if isinstance(answer, list | tuple) else None
        if titles is None:
            return "give the list of the hits' titles."
        source_of = dict(zip(self.stored.titles, self.stored.sources, strict=False))
        if any(source_of.get(t) != self.source for t in titles):
            return f"some titles come from another file than {self.source!r}: filter in the search."
        mask = np.array([s == self.source for s in self.stored.sources])
        ids = self.stored.dense_ids(self.query_vector, self.top_n, mask)
        truth = [self.stored.titles[self.stored.ids.index(i)] for i in ids]
        if len(titles) != len(truth):
            return f"expected {len(truth)} titles (TOP_N)."
        if titles != truth:
            return "the titles obey the filter but are not the best ones within it, in order."
        return None


def ex05(rag, questions_path: Path, off_topic, query_vector, source, top_n):
    """Notebook 05's three exercises, bound to its collection and questions."""
    stored = Stored(rag.store.client, rag.store.collection)
    languages = {q["query"]: q["lang"] for q in load_labelled(questions_path)}
    return (
        RefusalThreshold(rag.embedder.encode_queries, stored, languages, off_topic),
        CitationChecker(),
        SourceFilter(stored, query_vector, source, top_n),
    )


# ---- 06 Comparison -----------------------------------------------------------------------------------------


class _Evaluation:
    """Truths for 06: per question, its relevant rows and dense order, with numpy over Milvus' rows."""

    def __init__(self, stored: Stored, questions: Sequence[dict], vectors: np.ndarray):
        self.stored = stored
        self.questions = [q for q in questions if stored.relevant(q["relevant"]).any()]
        keep = [i for i, q in enumerate(questions) if stored.relevant(q["relevant"]).any()]
        self.vectors = np.asarray(vectors)[keep]
        self.relevant = np.array([stored.relevant(q["relevant"]) for q in self.questions])

    def dense_orders(self, vectors: np.ndarray | None = None) -> np.ndarray:
        return _orders(self.vectors if vectors is None else vectors, self.stored.vectors)

    def ids_to_order(self, ids: Sequence[str]) -> list[int]:
        index = {i: n for n, i in enumerate(self.stored.ids)}
        return [index[i] for i in ids]

    def hybrid_orders(self, depth: int, rrf_k: int = 60) -> list[list[int]]:
        """Milvus' own RRF fusion (hybrid_search, RRFRanker) of the dense and BM25 lists, `depth` deep."""
        from pymilvus import AnnSearchRequest, RRFRanker

        out = []
        for q, v in zip(self.questions, self.vectors, strict=True):
            dense = {"metric_type": "IP", "params": {"ef": max(64, depth)}}
            reqs = [
                AnnSearchRequest([np.asarray(v).tolist()], "dense", dense, limit=depth),
                AnnSearchRequest([q["query"]], "sparse", {"metric_type": "BM25"}, limit=depth),
            ]
            hits = self.stored.client.hybrid_search(
                self.stored.collection, reqs, ranker=RRFRanker(rrf_k), limit=depth
            )[0]
            out.append(self.ids_to_order([h["id"] for h in hits]))
        return out


class WeightedFusion(Exercise):
    title = "Exercise 1 (weighted fusion)"
    hint_text = (
        "For every judged question, `hybrid_search` with a dense and a BM25 `AnnSearchRequest` "
        "(limit=K each) "
        "and `ranker=WeightedRanker(0.7, 0.3)`, `limit=K`; a run with `to_run`; "
        "`evaluate(qrels, run, 'mrr@10')`."
    )
    solution_text = """
vectors = rag.embedder.encode_queries([q.query for q in judged])
weighted_hits = {}
for q, v in zip(judged, vectors):
    reqs = [AnnSearchRequest([v.tolist()], "dense", {"metric_type": "IP"}, limit=K),
            AnnSearchRequest([q.query], "sparse", {"metric_type": "BM25"}, limit=K)]
    res = rag.store.client.hybrid_search(settings.collection, reqs, ranker=WeightedRanker(0.7, 0.3), limit=K)
    weighted_hits[q.qid] = {h["id"]: float(K - r) for r, h in enumerate(res[0])}
weighted_mrr = evaluate(qrels, Run(weighted_hits), "mrr@10")
"""

    def __init__(self, ev: _Evaluation, weights: tuple[float, float], k: int):
        super().__init__()
        self.ev, self.weights, self.k = ev, weights, k

    def truth(self) -> float:
        from pymilvus import AnnSearchRequest, WeightedRanker

        orders = []
        for q, v in zip(self.ev.questions, self.ev.vectors, strict=True):
            reqs = [
                AnnSearchRequest([np.asarray(v).tolist()], "dense", {"metric_type": "IP"}, limit=self.k),
                AnnSearchRequest([q["query"]], "sparse", {"metric_type": "BM25"}, limit=self.k),
            ]
            res = self.ev.stored.client.hybrid_search(
                self.ev.stored.collection, reqs, ranker=WeightedRanker(*self.weights), limit=self.k
            )[0]
            orders.append(self.ev.ids_to_order([h["id"] for h in res]))
        return mrr10(orders, self.ev.relevant)

    def problem(self, answer: Any) -> str | None:
        value = float(answer)
        if not 0 <= value <= 1:
            return "MRR@10 lies between 0 and 1."
        if _close(value, self.truth()):
            return None
        if _close(value, mrr10(self.ev.hybrid_orders(self.k), self.ev.relevant)):
            return "that is RRF hybrid's MRR@10: use ranker=WeightedRanker(0.7, 0.3)."
        return "your MRR@10 differs from the weighted fusion's, computed by hand over the same questions."


class InstructionEffect(Exercise):
    title = "Exercise 2 (the query instruction)"
    hint_text = (
        "Two dense runs over the judged questions: `rag.retrieve(q.query, 'dense', K)` and the same with "
        "`instruction=''`; `evaluate(qrels, Run(to_run(...)), 'mrr@10')` for each; give (default, bare)."
    )
    solution_text = """
default_run = to_run({q.qid: rag.retrieve(q.query, "dense", K) for q in judged})
bare_run = to_run({q.qid: rag.retrieve(q.query, "dense", K, instruction="") for q in judged})
instruction_mrr = (evaluate(qrels, Run(default_run), "mrr@10"), evaluate(qrels, Run(bare_run), "mrr@10"))
"""

    def __init__(self, ev: _Evaluation, model, instruction_aware: bool):
        super().__init__()
        self.ev, self.model, self.aware = ev, model, instruction_aware

    def mrr(self, bare: bool) -> float:
        texts = [q["query"] for q in self.ev.questions]
        kwargs = {"prompt": ""} if bare or not self.aware else {}
        vectors = self.model.encode_query(texts, normalize_embeddings=True, **kwargs)
        return mrr10(self.ev.dense_orders(vectors), self.ev.relevant)

    def problem(self, answer: Any) -> str | None:
        if not isinstance(answer, tuple) or len(answer) != 2:
            return "give a pair (MRR@10 with the default instruction, MRR@10 with instruction='')."
        default, bare = (float(a) for a in answer)
        truth_default, truth_bare = self.mrr(bare=False), self.mrr(bare=True)
        if _close(default, truth_bare) and _close(bare, truth_default) and not _close(default, bare):
            return "the pair is swapped: the default instruction first, the bare question second."
        if not _close(default, truth_default):
            return "the first value differs from dense MRR@10 with the model's own query prompt."
        if not _close(bare, truth_bare):
            return "the second value differs from dense MRR@10 of the bare questions (prompt '')."
        return None


class RecallCurve(Exercise):
    title = "Exercise 3 (recall at other k)"
    hint_text = (
        "Retrieve the dense top `K_MAX` per question, `evaluate(qrels, run, [f'recall@{k}' for k in ks])`: "
        "recall@k is the share of a question's relevant passages in its top k, averaged over questions."
    )
    solution_text = """
dense_long = Run(to_run({q.qid: rag.retrieve(q.query, "dense", K_MAX) for q in judged}))
dense_recall = {k: evaluate(qrels, dense_long, f"recall@{k}") for k in range(1, K_MAX + 1)}
"""

    def __init__(self, ev: _Evaluation, k_max: int):
        super().__init__()
        self.ev, self.k_max = ev, k_max

    def recall(self, k: int, any_hit: bool = False) -> float:
        orders = self.ev.dense_orders()[:, :k]
        found = np.take_along_axis(self.ev.relevant, orders, axis=1).sum(axis=1)
        total = self.ev.relevant.sum(axis=1)
        return float(np.mean(found > 0)) if any_hit else float(np.mean(found / total))

    def problem(self, answer: Any) -> str | None:
        ks = list(range(1, self.k_max + 1))
        if not isinstance(answer, dict) or sorted(answer) != ks:
            return f"give a dict {{k: recall@k}} for every k from 1 to {self.k_max}."
        for k in ks:
            if _close(answer[k], self.recall(k)):
                continue
            if _close(answer[k], self.recall(k, any_hit=True)):
                return (
                    f"k={k}: that is hit@k (any relevant found); recall@k is the share of "
                    f"relevant passages found."
                )
            return f"k={k}: your recall differs from the share of relevant passages in the dense top {k}."
        return None


class QuestionsNeeded(Exercise):
    title = "Exercise 4 (how many questions separate two strategies)"
    hint_text = (
        "Per question, d_i = dense MRR@10 − hybrid MRR@10 (`per_query`); n = ((z₀.₉₇₅ + z_power) · sd(d) / "
        "mean(d))², rounded up, with `norm.ppf` and the sd of the differences (ddof=1)."
    )
    solution_text = """
diff = (per_query["dense"] - per_query["hybrid"]).to_numpy()
z = norm.ppf(0.975) + norm.ppf(POWER)
questions_needed = math.ceil((z * diff.std(ddof=1) / diff.mean()) ** 2)
"""

    def __init__(self, ev: _Evaluation, depth: int, power: float = 0.8):
        super().__init__()
        self.ev, self.depth, self.power = ev, depth, power

    def per_question(self) -> tuple[np.ndarray, np.ndarray]:
        def rr(orders):
            return np.array(
                [
                    1 / r if (r := first_relevant_rank(list(o)[:10], rel)) else 0.0
                    for o, rel in zip(orders, self.ev.relevant, strict=True)
                ]
            )

        return rr(self.ev.dense_orders()[:, : self.depth]), rr(self.ev.hybrid_orders(self.depth))

    def problem(self, answer: Any) -> str | None:
        from scipy.stats import norm

        dense, hybrid = self.per_question()
        diff = dense - hybrid
        if abs(diff.mean()) < 1e-12:  # a tie on average: no number of questions separates them
            return (
                None
                if answer == math.inf
                else "dense and hybrid tie on average here: the answer is math.inf."
            )
        z = norm.ppf(0.975) + norm.ppf(self.power)
        truth = math.ceil((z * diff.std(ddof=1) / diff.mean()) ** 2)
        n = int(answer)
        if abs(n - truth) <= 1:
            return None
        z80 = norm.ppf(0.975) + norm.ppf(0.80)
        if self.power != 0.8 and abs(n - math.ceil((z80 * diff.std(ddof=1) / diff.mean()) ** 2)) <= 1:
            return f"that is the number for 80% power; use z = norm.ppf(0.975) + norm.ppf({self.power})."
        sd_scores = math.ceil((z * dense.std(ddof=1) / diff.mean()) ** 2)
        if abs(n - sd_scores) <= 1:
            return (
                "use the sd of the per-question differences, not of one strategy's scores: "
                "pairing is the point."
            )
        if abs(n - math.ceil(z * diff.std(ddof=1) / abs(diff.mean()))) <= 1:
            return "the formula squares (z · sd / d): the questions needed grow as 1/d²."
        return "your number differs from ((z₀.₉₇₅ + z₀.₈) · sd / d)² for the dense − hybrid differences."


def ex06(rag, questions_path: Path, k: int, k_max: int, power: float = 0.9):
    """Notebook 06's four exercises, bound to its collection and labelled questions."""
    stored = Stored(rag.store.client, rag.store.collection)
    questions = load_labelled(questions_path)
    ev = _Evaluation(stored, questions, rag.embedder.encode_queries([q["query"] for q in questions]))
    aware = bool(rag.embedder.instruction_aware)
    return (
        WeightedFusion(ev, (0.7, 0.3), k),
        InstructionEffect(ev, rag.embedder.model, aware),
        RecallCurve(ev, k_max),
        QuestionsNeeded(ev, k, power),
    )


# ---- 07 Exploring ------------------------------------------------------------------------------------------


class _Ranks:
    """Each labelled question's first relevant rank under dense (numpy, exact) and BM25 (Milvus), 10 deep."""

    def __init__(self, stored: Stored, model, questions: list[dict]):
        self.stored, self.questions = stored, questions
        vectors = model.encode_query([q["query"] for q in questions], normalize_embeddings=True)
        self.rows = []
        for line, (q, vector) in enumerate(zip(questions, vectors, strict=True), start=1):
            relevant = dict(zip(stored.ids, stored.relevant(q["relevant"]), strict=True))
            dense = stored.dense_ids(vector, 10)
            bm25 = stored.bm25_ids(q["query"], 10)
            rank = {name: next((r for r, i in enumerate(ids, 1) if relevant[i]), None)
                    for name, ids in (("dense", dense), ("bm25", bm25))}  # fmt: skip
            self.rows.append({"line": line, "lang": q.get("lang", "en"), "query": q["query"], **rank})

    def row(self, answer: Any) -> dict | None:
        """The labelled question an answer names: its line number in the file, or its text."""
        if isinstance(answer, str):
            return next((r for r in self.rows if r["query"].strip() == answer.strip()), None)
        return next((r for r in self.rows if r["line"] == answer), None)


def _rank_text(rank: int | None) -> str:
    return f"rank {rank}" if rank else "not in the top 10"


class Bm25Wins(Exercise):
    title = "Exercise 1 (where BM25 wins)"
    hint_text = (
        "In the disagreement table (section 5) a negative 'RR difference' means the second strategy, BM25, "
        "ranks the relevant passage higher; give that row's `line` (or the question's text)."
    )
    solution_text = """
wins = table[table["RR difference"] < 0]   # COMPARE = ("dense", "bm25"): negative means BM25 ranks it higher
answer = int(wins.iloc[0]["line"])
explore(rag, wins.iloc[0]["question"], COMPARE, k=3, relevant=...)  # read the words BM25 matched
"""

    def __init__(self, ranks: _Ranks):
        super().__init__()
        self.ranks = ranks

    def problem(self, answer: Any) -> str | None:
        row = self.ranks.row(answer)
        if row is None:
            return f"{answer!r} is neither the line number nor the text of a labelled question."
        dense, bm25 = row["dense"], row["bm25"]
        if bm25 is None:
            return "on that question BM25 does not find the relevant passage in its top 10 at all."
        if dense is not None and dense <= bm25:
            verdict = "a tie" if dense == bm25 else "dense wins"
            where = f"dense puts the relevant passage at {_rank_text(dense)}, BM25 at {_rank_text(bm25)}"
            return f"on that question {where}: {verdict}."
        return None


class OtherLanguages(Exercise):
    title = "Exercise 2 (questions in other languages)"
    hint_text = (
        "Keep the questions whose `lang` is not 'en'; for each, the relevant passage is found when its rank "
        "is a number (not '>10') in the disagreement table. Count per strategy."
    )
    solution_text = """
others = table[table["lang"] != "en"]
answer = {s: int((others[f"{s} rank"] != ">10").sum()) for s in ("dense", "bm25")}
"""

    def __init__(self, ranks: _Ranks):
        super().__init__()
        self.ranks = ranks

    def counts(self, rows: list[dict], depth: int = 10) -> dict[str, int]:
        return {s: sum(1 for r in rows if r[s] is not None and r[s] <= depth) for s in ("dense", "bm25")}

    def problem(self, answer: Any) -> str | None:
        if not isinstance(answer, dict) or set(answer) != {"dense", "bm25"}:
            return 'give a dict with two counts: {"dense": ..., "bm25": ...}.'
        others = [r for r in self.ranks.rows if r["lang"] != "en"]
        truth = self.counts(others)
        if answer == truth:
            return None
        if answer == self.counts(self.ranks.rows):
            return "those counts include the English questions: keep only those whose lang is not 'en'."
        if answer == self.counts(others, depth=1):
            return "those count rank 1 only; a passage anywhere in the top 10 counts as found."
        wrong = [s for s in ("dense", "bm25") if answer[s] != truth[s]]
        return f"the count for {' and '.join(wrong)} is off (there are {len(others)} non-English questions)."


class RrfByHand(Exercise):
    title = "Exercise 3 (RRF by hand)"
    hint_text = (
        "Take hybrid's first passage; find its rank r1 in the dense list and r2 in the BM25 list (10 deep, "
        "ranks from 1); its score is 1/(60 + r1) + 1/(60 + r2), with a term only for the lists it is in."
    )
    solution_text = """
top = found.hits["hybrid"][0].id
ranks = [next((n for n, h in enumerate(found.hits[s], 1) if h.id == top), None) for s in ("dense", "bm25")]
answer = sum(1 / (60 + r) for r in ranks if r)
"""

    def __init__(self, stored: Stored, model, question: str):
        super().__init__()
        vector = model.encode_query([question], normalize_embeddings=True)[0]
        self.lists = [stored.dense_ids(vector, 10), stored.bm25_ids(question, 10)]

    def problem(self, answer: Any) -> str | None:
        if not isinstance(answer, int | float):
            return "give one number, the fused score."
        fused = rrf(self.lists, 60)
        top = max(fused, key=fused.get)
        if _close(answer, fused[top], 1e-5):
            return None
        one_list = [1 / (60 + ids.index(top) + 1) for ids in self.lists if top in ids]
        if any(_close(answer, x, 1e-5) for x in one_list):
            return "that is one list's term only: add 1/(60 + rank) for each list the passage is in."
        if _close(answer, rrf([ids[:] for ids in self.lists], 59)[top], 1e-5):
            return "ranks start at 1, not 0: the first passage adds 1/61."
        return "not the fused score of hybrid's first passage: check both ranks and k = 60."


def ex07(
    client, collection: str, model, questions_path: Path, question: str
) -> tuple[Exercise, Exercise, Exercise]:
    """Notebook 07's three exercises, bound to its collection, embedder, labelled questions and question."""
    stored = Stored(client, collection)
    ranks = _Ranks(stored, model, load_labelled(questions_path))
    return Bm25Wins(ranks), OtherLanguages(ranks), RrfByHand(stored, model, question)
