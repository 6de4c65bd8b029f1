"""`python -m benchmarks train_reranker`: does a cross-encoder trained here, in minutes, beat dense retrieval?

Issue 31's experiment, kept so that anyone can rerun it. all-MiniLM-L6-v2's weights (the offline kit's
embedder) become a sentence-transformers `CrossEncoder` with a fresh one-logit head, trained with the
library's `BinaryCrossEntropyLoss` on (heading, section) pairs from the Milvus 2.4.x docs *outside* en/faq/,
with hard negatives that the embedder mines from other pages. The FAQ and the labelled questions are the
test: no training text comes from en/faq/ or contains a labelled question or one of its relevant headings
(checked before training). Then, on the labelled questions: dense top 10 against the same 10 reranked,
MRR@10 and recall@3 with notebook 06's bootstrap intervals and paired t-test, every per-question value
recomputed by hand from the ranked ids. The training loop is ours (a few lines around the library's loss):
`CrossEncoderTrainer` needs `datasets` and `accelerate`, which nothing else here uses.
"""

from __future__ import annotations

import os
import random
import time
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from helpers.chunking import (
    FAQ_PREFIX,
    Document,
    Passage,
    chunk_documents,
    find_archive,
    load_corpus,
    markdown_chunks,
)
from helpers.evaluate import Question, build_qrels, compute_metrics, load_questions
from helpers.rerank import Ranker
from helpers.setup import QUESTIONS

SEED = 0
# The recipe (the full run). --quick: fewer queries; --smoke: a few pages, steps and questions.
RECIPE = {
    "queries": 300,
    "negatives": 3,
    "max_length": 128,
    "batch": 16,
    "lr": 1e-4,
    "epochs": 1,
    "loss": "bce",
    "held_out": 100,  # headings left out of training: does the model rank in-domain sections at all?
}
QUICK = {"queries": 150}
SMOKE = {
    "queries": 6,
    "held_out": 2,
    "negatives": 1,
    "max_length": 32,
    "batch": 4,
    "pages": 6,
    "questions": 4,
}
N_RESAMPLES, CI_SEED = 9999, 0  # notebook 06's bootstrap
MIN_BODY, MIN_HEADING = 80, 8  # characters: a section shorter than this says too little to learn from


class Example(NamedTuple):
    """A training query (a section heading), its section's text and hard negatives from other pages."""

    query: str
    positive: str
    negatives: tuple[str, ...]
    source: str


def held_out_strings(questions: list[Question]) -> list[str]:
    """What no training text may contain: every labelled question and every relevant FAQ heading."""
    return sorted({q.query for q in questions} | {r for q in questions for r in q.relevant})


def sections(archive: Path, questions: list[Question], pages: int | None = None) -> list[Passage]:
    """The markdown-chunked docs outside en/faq/ (sorted pages), less any passage that holds a test string."""
    with zipfile.ZipFile(archive) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".md") and not n.startswith(FAQ_PREFIX))
        docs = [Document(n, zf.read(n).decode("utf-8")) for n in names[:pages]]
    banned = held_out_strings(questions)
    return [p for p in markdown_chunks(docs) if not any(b in p.text for b in banned)]


def training_examples(
    archive: Path, questions: list[Question], embedder, recipe: dict, pages: int | None = None
) -> list[Example]:
    """Heading -> section body, with the embedder's nearest bodies from other pages as negatives (seeded)."""
    passages = sections(archive, questions, pages)
    counts: dict[str, int] = {}
    for p in passages:
        heading = p.text.split("\n", 1)[0]
        counts[heading] = counts.get(heading, 0) + 1
    items = []  # a heading found once in the docs names one section: "Prerequisites" names forty
    for p in passages:
        heading, _, body = p.text.partition("\n")
        if counts[heading] == 1 and len(heading) >= MIN_HEADING and len(body.strip()) >= MIN_BODY:
            items.append((heading, body.strip(), p.source))
    bodies = embedder.encode_documents([body for _, body, _ in items])
    queries = embedder.encode_queries([heading for heading, _, _ in items])
    # A seeded sample; its first `queries` (in page order) train, the next `held_out` check in-domain ranking.
    # random.sample draws index by index here, so the first `queries` are the same whatever `held_out` is.
    wanted = min(recipe["queries"] + recipe.get("held_out", 0), len(items))
    drawn = random.Random(SEED).sample(range(len(items)), wanted)
    chosen = sorted(drawn[: recipe["queries"]]) + drawn[recipe["queries"] :]
    examples = []
    for i in chosen:
        heading, body, source = items[i]
        negatives: list[str] = []
        for j in np.argsort(-(bodies @ queries[i]), kind="stable"):
            # other pages only, and no near-copy of the positive (one text on two pages is no negative)
            if items[j][2] != source and float(bodies[i] @ bodies[j]) < 0.9:
                negatives.append(items[j][1])
            if len(negatives) == recipe["negatives"]:
                break
        examples.append(Example(heading, body, tuple(negatives), source))
    check_held_out(examples, questions)
    return examples


def check_held_out(examples: list[Example], questions: list[Question]) -> None:
    """Refuse training data that touches the test: en/faq/, a labelled question or a relevant heading."""
    banned = held_out_strings(questions)
    for ex in examples:
        if ex.source.startswith(FAQ_PREFIX):
            raise ValueError(f"training example {ex.query!r} comes from {ex.source}, an FAQ page: the test")
        texts = (ex.query, ex.positive, *ex.negatives)
        found = next((b for b in banned if any(b in t for t in texts)), None)
        if found is not None:
            raise ValueError(f"training example {ex.query!r} ({ex.source}) quotes a test string: {found!r}")


def train(examples: list[Example], model_path: str, recipe: dict):
    """A `CrossEncoder`: `model_path`'s encoder, a fresh one-logit head, trained on `examples` (seeded)."""
    import torch
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        ce = CrossEncoder(model_path, num_labels=1, max_length=recipe["max_length"], device="cpu")
        loss = BinaryCrossEntropyLoss(ce)
        pairs = [(e.query, e.positive, 1.0) for e in examples]
        pairs += [(e.query, n, 0.0) for e in examples for n in e.negatives]
        size, params = recipe["batch"], [p for p in ce.parameters() if p.requires_grad]
        steps = recipe["epochs"] * -(-len(pairs) // size)
        opt = torch.optim.AdamW(params, lr=recipe["lr"])
        warm = max(1, steps // 10)  # linear warm-up over a tenth of the steps, then linear decay
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, (steps - s) / steps))
        ce.model.train()
        for epoch in range(recipe["epochs"]):
            order = list(range(len(pairs)))
            random.Random(SEED + epoch).shuffle(order)
            for start in range(0, len(order), size):
                batch = [pairs[k] for k in order[start : start + size]]
                value = loss(
                    [[b[0] for b in batch], [b[1] for b in batch]], torch.tensor([b[2] for b in batch])
                )
                value.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step(), sched.step(), opt.zero_grad()
        ce.model.eval()
    return ce, len(pairs), steps


class PairRanker(Ranker):
    """A BERT-style `CrossEncoder` (query, passage) scorer: its logit orders the passages."""

    is_stand_in = False

    def __init__(self, ce, model_id: str):
        self.ce, self.model_id = ce, model_id

    def score(self, query: str, documents: list[str], instruction: str | None = None) -> np.ndarray:
        """The raw logit per document (the ranking is the same as the sigmoid's)."""
        pairs = [(query, d) for d in documents]
        return np.asarray(self.ce.predict(pairs, batch_size=16, show_progress_bar=False), dtype=np.float32)


def hand_metrics(ranked: list[str], relevant: dict[str, int]) -> tuple[float, float]:
    """MRR@10 and recall@3 of one ranking, by hand (the independent check on ranx)."""
    mrr = next((1.0 / (k + 1) for k, pid in enumerate(ranked[:10]) if pid in relevant), 0.0)
    return mrr, len(set(ranked[:3]) & set(relevant)) / len(relevant)


def measure(rag, ranker: Ranker, questions: list[Question], chunks: list[Passage]) -> dict:
    """Dense top 10 against the same reranked: means, 06's bootstrap intervals and paired t-test."""
    from scipy.stats import bootstrap, ttest_rel

    qrels = build_qrels(questions, chunks)
    judged = [q for q in questions if q.qid in qrels]
    runs: dict[str, dict] = {"dense": {}, "reranked": {}}
    for q in judged:
        hits = rag.retrieve(q.query, "dense", 10)
        for name, ranked in (("dense", hits), ("reranked", ranker.rerank(q.query, hits))):
            runs[name][q.qid] = {p.id: float(len(ranked) - k) for k, p in enumerate(ranked)}
    out: dict = {"questions": len(judged)}
    per = {name: compute_metrics(qrels, run, ("mrr@10", "recall@3"))[1] for name, run in runs.items()}
    for name, run in runs.items():
        for q in judged:  # ranx against the hand computation, question by question
            by_hand = hand_metrics(list(run[q.qid]), qrels[q.qid])
            assert np.allclose(by_hand, (per[name]["mrr@10"][q.qid], per[name]["recall@3"][q.qid])), q.qid
    for metric in ("mrr@10", "recall@3"):
        values = {name: np.array([per[name][metric][q.qid] for q in judged]) for name in runs}
        row: dict = {}
        for name, v in [*values.items(), ("reranked - dense", values["reranked"] - values["dense"])]:
            ci = bootstrap(
                (v,),
                np.mean,
                n_resamples=N_RESAMPLES,
                method="percentile",
                rng=np.random.default_rng(CI_SEED),
            )
            row[name] = {
                "mean": round(float(v.mean()), 4),
                "ci95": [round(float(x), 4) for x in ci.confidence_interval],
            }
        p = float(ttest_rel(values["reranked"], values["dense"]).pvalue)
        row["p_paired_t"] = None if np.isnan(p) else p  # NaN: every per-question difference is 0
        out[metric] = row
    p = out["mrr@10"]["p_paired_t"]
    out["better_p_lt_0.05"] = bool(
        out["mrr@10"]["reranked - dense"]["mean"] > 0 and p is not None and p < 0.05
    )
    return out


def in_domain(ce, embedder, held_out: list[Example]) -> dict:
    """Held-out headings: the positive's rank among it and its hard negatives, reranker against dense."""
    ranks: dict[str, list[int]] = {"dense": [], "reranked": []}
    for e in held_out:
        docs = [e.positive, *e.negatives]
        dense = embedder.encode_documents(docs) @ embedder.encode_queries([e.query])[0]
        reranked = ce.predict([(e.query, d) for d in docs], show_progress_bar=False)
        for name, scores in (("dense", dense), ("reranked", reranked)):
            ranks[name].append(1 + int(np.sum(np.asarray(scores)[1:] >= scores[0])))  # ties count against it
    n = 1 + max((len(e.negatives) for e in held_out), default=0)
    out: dict = {
        "headings": len(held_out),
        "candidates": n,
        "chance_mrr": round(float(np.mean(1 / np.arange(1, n + 1))), 4),
    }
    for name, r in ranks.items():
        out[name] = {
            "mrr": round(float(np.mean(1 / np.array(r))), 4),
            "top1": round(float(np.mean(np.array(r) == 1)), 4),
        }
    return out


def run(settings, device: str, quick: bool, only: str = "", smoke: bool = False) -> dict:
    """Build the training data, train (timed, load average beside it), measure on the labelled FAQ."""
    import torch

    from helpers.cli_eval import scratch_index
    from helpers.embedding import Embedder, load_embedder
    from helpers.offline.standins import MINILM_ID, model_path
    from helpers.pipeline import RAG
    from helpers.setup import choose_models

    recipe = RECIPE | (SMOKE if smoke else QUICK if quick else {})
    archive, why = find_archive(settings, download=not smoke)
    if archive is None:
        return {"skipped": f"the Milvus docs archive is not available ({why}): nothing to train on"}
    questions = load_questions(QUESTIONS["milvus-faq"])
    embedder = Embedder(load_embedder(MINILM_ID, settings), MINILM_ID)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    examples = training_examples(archive, questions, embedder, recipe, recipe.get("pages"))
    examples, held_out = examples[: recipe["queries"]], examples[recipe["queries"] :]
    t1 = time.perf_counter()
    ce, pairs, steps = train(examples, model_path(MINILM_ID, settings.cache_dir), recipe)
    t2 = time.perf_counter()
    out = {
        "recipe": recipe,
        "training": {"queries": len(examples), "pairs": pairs, "steps": steps, "data_s": round(t1 - t0, 1)},
        "train_s": round(t2 - t1, 1),
        "load_average_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "cpu_threads": torch.get_num_threads(),
    }
    test = questions[: recipe.get("questions")]
    with scratch_index(settings.with_overrides(models="offline")) as place:
        rag = RAG(
            place("train_reranker"),
            choose_models(settings.with_overrides(models="offline")),
            embedder=embedder,
        )
        try:
            rag.ingest("milvus-faq", progress=False)
            chunks = chunk_documents(load_corpus("milvus-faq", settings).documents)
            out["eval"] = measure(rag, PairRanker(ce, f"{MINILM_ID} + trained head"), test, chunks)
        finally:
            rag.close()
    out["in_domain_held_out"] = in_domain(ce, embedder, held_out)
    out["eval_s"] = round(time.perf_counter() - t2, 1)
    return out
