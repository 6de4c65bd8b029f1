"""Benchmark inputs: the FAQ passages, synthetic corpora of the same shape, and questions."""

from __future__ import annotations

import numpy as np

from helpers.chunking import chunk_documents, load_corpus
from helpers.config import Settings

QUESTIONS = [
    "How is data stored in milvus?",
    "What is the maximum dataset size Milvus can handle?",
    "How do I choose nlist and nprobe for IVF indexes?",
    "Why does a query on a small dataset take longer?",
    "Can I install Milvus on Windows?",
    "What is the difference between a search and a query?",
    "Does Milvus support inserting and searching at the same time?",
    "Why is there no vector data in etcd?",
    "How does Milvus flush data?",
    "What factors affect CPU usage?",
    "Which data types can the primary key field use?",
    "What happens when all etcd pods crash?",
    "Why did my configuration changes not take effect?",
    "How do I know whether Milvus started successfully?",
    "Does the query run in memory?",
    "What are the main factors affecting recall?",
    "Is Docker the only way to run Milvus?",
    "Why does Milvus return illegal instruction at startup?",
    "How precise are float vectors in Milvus?",
    "Does Milvus load the whole collection when partitions are given?",
]


def faq_passages(settings: Settings) -> tuple[list[str], str]:
    """The markdown-chunked FAQ (or the sample corpus when the archive is unavailable) and its name."""
    corpus = load_corpus("milvus-faq", settings)
    return [c.text for c in chunk_documents(corpus.documents)], corpus.name


def synthetic(passages: list[str], n: int, seed: int = 0) -> list[str]:
    """`n` passages shaped like the FAQ's: each reshuffles the sentences of a random FAQ passage."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        sentences = passages[int(rng.integers(len(passages)))].replace("\n", " ").split(". ")
        rng.shuffle(sentences)
        out.append(f"[{i}] " + ". ".join(sentences))
    return out
