"""The notebooks' self-checking exercises (notebooks/exercises.py).

Each check accepts a right answer and rejects typical wrong ones, each with its own message, against truths it
computes itself.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from helpers.config import ROOT

sys.path.insert(0, str(ROOT / "notebooks"))

import exercises as ex


def verdict(exercise, answer, capsys) -> str:
    """What check() printed, and that `solved` agrees with it."""
    exercise.check(answer)
    out = capsys.readouterr().out.strip()
    assert exercise.solved == out.startswith("✓"), out
    return out


def assert_rejects(exercise, answers_and_phrases, capsys) -> None:
    """Every wrong answer is rejected, each with a message of its own that names the mistake."""
    messages = []
    for answer, phrase in answers_and_phrases:
        out = verdict(exercise, answer, capsys)
        assert out.startswith("✗") and phrase in out, (phrase, out)
        messages.append(out)
    assert len(set(messages)) == len(messages), messages


def test_blank_answer_is_not_attempted_and_never_passes(capsys):
    exercise = ex.CitationChecker()
    for answer in (ex.____, [ex.____], {"a": ex.____}, (1, ex.____)):
        out = verdict(exercise, answer, capsys)
        assert "not attempted" in out and not exercise.solved


def test_hint_and_solution_print_on_request_only(capsys):
    exercise = ex.CitationChecker()
    exercise.check(lambda a, t: ["x"])
    out = capsys.readouterr().out
    assert "re.findall" not in out  # a wrong answer's message does not give the solution away
    exercise.hint()
    exercise.solution()
    assert "re.findall" in capsys.readouterr().out


# ---- 01 ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(minilm):
    return minilm.model.tokenizer


PASSAGES = [
    "Where does Milvus store data?\n\n"
    + "\n\n".join(f"Paragraph {n} says a few words about storage." for n in range(6)),
    "Is Milvus free?\n\nYes.",
]


def test_token_cap(tokenizer, capsys):
    limit = 40
    q1 = ex.TokenCap(PASSAGES, tokenizer, limit)
    heading, _, body = PASSAGES[0].partition("\n\n")
    paragraphs = body.split("\n\n")
    right = [f"{heading}\n\n" + "\n\n".join(paragraphs[i : i + 2]) for i in range(0, 6, 2)] + [PASSAGES[1]]
    assert all(len(tokenizer(t)["input_ids"]) <= limit for t in right)
    assert verdict(q1, right, capsys).startswith("✓")
    no_heading = ["\n\n".join(paragraphs[i : i + 2]) for i in range(0, 6, 2)] + [PASSAGES[1]]
    lost = [*right[:2], PASSAGES[1]]
    assert_rejects(
        q1,
        [
            (PASSAGES, "still longer than 40 tokens"),  # nothing split
            (right[:3], "already fit the limit are missing"),  # the short passage dropped
            (lost[:1] + right[1:2] + right[1:2] + [PASSAGES[1]], "text is lost or doubled"),
            (no_heading, "not split into parts that start with its heading"),
        ],
        capsys,
    )


def test_truncated(tokenizer, capsys):
    limit = 30
    q2 = ex.Truncated(PASSAGES, tokenizer, limit)
    ids = tokenizer(PASSAGES[0])["input_ids"]
    assert len(ids) > limit and len(tokenizer(PASSAGES[1])["input_ids"]) <= limit
    tail = tokenizer.decode(ids[limit - 1 :], skip_special_tokens=True)
    head = tokenizer.decode(ids[:limit], skip_special_tokens=True)
    assert verdict(q2, {0: tail}, capsys).startswith("✓")
    assert_rejects(
        q2,
        [
            ({0: tail, 1: ""}, "wrong passages"),
            ({0: head}, "that is the part the model reads"),
            ({0: tokenizer.decode(ids[limit + 3 :], skip_special_tokens=True)}, "the unread text differs"),
        ],
        capsys,
    )


def test_folder_problems(tmp_path, capsys):
    (tmp_path / "a.md").write_text("---\ntitle: x\n---\n# Page\n\n### Q?\n\nA.\n\n```\n# comment\n```\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("## Another?\n\nYes.\n")
    q3 = ex.FolderProblems(tmp_path)
    # by hand: a.md splits into "---\ntitle: x\n---\n", "Page\n\n##", "Q?\n\nA.\n\n```\n", "comment\n```\n";
    # b.md into "#", "Another?\n\nYes.\n"
    right = {"naive pieces": 6, "front matter": 1, "trailing '#'": 2}
    assert verdict(q3, right, capsys).startswith("✓")
    assert_rejects(
        q3,
        [
            ({**right, "naive pieces": 4}, "naive pieces is off"),
            ({**right, "trailing '#'": 1}, "count of \"trailing '#'\" is off"),
            ({"naive pieces": 6}, "exactly the keys"),
        ],
        capsys,
    )


# ---- 02 ----------------------------------------------------------------------------------------------------

QUESTIONS = [
    "Where does Milvus keep the data I insert?",
    "Is Milvus free to use?",
    "How do I install Milvus on Windows?",
    "What does a vector database do?",
]
DOCS = [
    "Where does Milvus store data?\n\nInserted data goes to object storage, metadata to etcd.",
    "How much does Milvus cost?\n\nMilvus is open source and free of charge.",
    "Can I install Milvus on Windows?\n\nYes, with Docker Desktop.",
    "What is a vector database?\n\nIt stores embeddings and searches them by similarity.",
    "Why is the time in the log files different?\n\nThe logs use UTC.",
]


@pytest.fixture(scope="module")
def embedded(minilm):
    model = minilm.model
    P = model.encode_document(DOCS, normalize_embeddings=True)
    Q = model.encode_query(QUESTIONS, normalize_embeddings=True)
    relevant = np.eye(len(QUESTIONS), len(DOCS), dtype=bool)
    return model, P, Q, relevant


def by_hand_mrr(Q, P, relevant) -> float:
    order = np.argsort(-(Q @ P.T), axis=1)
    ranks = [1 + next(r for r, j in enumerate(o) if rel[j]) for o, rel in zip(order, relevant, strict=True)]
    return float(np.mean([1 / r if r <= 10 else 0 for r in ranks]))


def test_own_instruction(embedded, capsys):
    model, P, _, relevant = embedded
    relevant = np.roll(relevant, 2, axis=1)  # labels off the nearest passage: MRR@10 moves with the prompt
    q1 = ex.OwnInstruction(model, QUESTIONS, P, relevant)
    tasks = [
        "Given a question about Milvus, retrieve the FAQ passage",
        "Classify the sentiment of a movie review",
    ]
    values = {}
    for task in tasks:
        Q = model.encode_query(QUESTIONS, prompt=f"Instruct: {task}\nQuery:", normalize_embeddings=True)
        values[task] = by_hand_mrr(Q, P, relevant)
    assert verdict(q1, values, capsys).startswith("✓")
    no_format = {
        t: by_hand_mrr(model.encode_query(QUESTIONS, prompt=t, normalize_embeddings=True), P, relevant)
        for t in tasks
    }
    assert no_format != values  # the prompt's format changes the vectors, so the check can tell
    assert_rejects(
        q1,
        [
            (no_format, "must be Qwen3's format"),
            ({tasks[0]: values[tasks[0]]}, "at least two tasks"),
            ({tasks[0]: values[tasks[0]], tasks[1]: 1.5}, "between 0 and 1"),
            ({f"Instruct: {tasks[0]}\nQuery:": 0.5, tasks[1]: 0.5}, "task descriptions alone"),
        ],
        capsys,
    )


def test_matryoshka_choice(capsys):
    rng = np.random.default_rng(0)
    P = rng.normal(size=(30, 64))
    Q = P[:12] + 0.9 * rng.normal(size=(12, 64))  # each question near its own passage
    relevant = np.eye(12, 30, dtype=bool)
    dims = [8, 16, 32, 64]
    q2 = ex.MatryoshkaChoice(Q, P, relevant, dims, budget=0.9)

    def mrr(d):
        cut = lambda X: X[:, :d] / np.linalg.norm(X[:, :d], axis=1, keepdims=True)  # noqa: E731
        return by_hand_mrr(cut(Q), cut(P), relevant)

    full = mrr(64)
    smallest = min(d for d in dims if mrr(d) >= 0.9 * full)
    below = [d for d in dims if mrr(d) < 0.9 * full]
    bigger = [d for d in dims if d > smallest]
    assert below and bigger, "the synthetic data must have sizes on both sides of the budget"
    mib = lambda d: 4 * d * 10_000_000 / 2**20  # noqa: E731
    assert verdict(q2, (smallest, mib(smallest)), capsys).startswith("✓")
    assert_rejects(
        q2,
        [
            ((below[0], mib(below[0])), "fall below 90%"),
            ((bigger[-1], mib(bigger[-1])), "a smaller size"),
            ((smallest, smallest * 10_000_000 / 2**20), "float32 number is 4 bytes"),
            ((48, mib(48)), "one of the measured sizes"),
        ],
        capsys,
    )


def test_multilingual(embedded, capsys):
    model, P, _, relevant = embedded
    q3 = ex.Multilingual(model, P, relevant[0])
    texts = [QUESTIONS[0], "Wo speichert Milvus meine Daten?", "¿Dónde guarda Milvus mis datos?"]
    ranks = {}
    for t in texts:
        order = np.argsort(-(model.encode_query([t], normalize_embeddings=True) @ P.T)[0])
        ranks[t] = 1 + next(r for r, j in enumerate(order) if relevant[0][j])
    assert verdict(q3, ranks, capsys).startswith("✓")
    assert_rejects(
        q3,
        [
            ({t: r - 1 for t, r in ranks.items()}, "ranks start at 1"),
            ({t: r + 1 for t, r in ranks.items()}, "the rank of its right passage is not"),
            (dict(list(ranks.items())[:2]), "three or more versions"),
        ],
        capsys,
    )


@pytest.fixture(scope="module")
def tiny_qwen3(base_settings):
    import torch
    from transformers import AutoModel, AutoTokenizer

    from helpers.offline.standins import TINY_EMBEDDER_ID, model_path

    path = model_path(TINY_EMBEDDER_ID, base_settings.cache_dir)
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path, dtype=torch.float32).eval()


def test_right_padding(tiny_qwen3, capsys):
    import torch

    tokenizer, model = tiny_qwen3
    text, batches = (
        "Can I run Milvus on my laptop?",
        [["A longer text, a sentence or two long."], ["Long. " * 30]],
    )

    def last(texts, side):
        tokenizer.padding_side = side
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state[:, -1]
        return torch.nn.functional.normalize(hidden, dim=-1).numpy()

    alone = last([text], "left")[0]
    right = [float(last([text, *b], "right")[0] @ alone) for b in batches]
    left = [float(last([text, *b], "left")[0] @ alone) for b in batches]
    assert min(right) < 0.999 and np.allclose(left, 1, atol=1e-4)
    q4 = ex.RightPadding(tokenizer, model, text, batches)
    assert verdict(q4, right, capsys).startswith("✓")
    raw = [float(last([text, *b], "right")[0] @ alone) * 3 for b in batches]  # as if never normalised
    assert_rejects(
        q4,
        [
            (left, "that is left padding"),
            (raw, "normalise both vectors"),
            (right[:1], "one cosine per batch"),
            ([right[1], right[0]], "batch 0: the cosine differs"),
        ],
        capsys,
    )


# ---- 03, and a Milvus Lite collection shared by 03, 05 and 06 ----------------------------------------------

CORPUS = [  # (source, title, text): a small FAQ written for these tests
    (
        "a.md",
        "A > Where does Milvus store data?",
        "Where does Milvus store data?\n\nIn object storage; metadata in etcd.",
    ),
    (
        "a.md",
        "A > How does Milvus flush data?",
        "How does Milvus flush data?\n\nData is flushed from the log to storage.",
    ),
    ("a.md", "A > Is Milvus free?", "Is Milvus free?\n\nMilvus is open source and free of charge."),
    ("a.md", "A > Can I install Milvus on Windows?", "Can I install Milvus on Windows?\n\nYes, with Docker."),
    (
        "b.md",
        "B > What is Milvus Lite?",
        "What is Milvus Lite?\n\nA Python library that stores data in a local file.",
    ),
    ("b.md", "B > Where are the logs?", "Where are the logs?\n\nMilvus writes its logs to standard output."),
    ("b.md", "B > How much memory?", "How much memory?\n\nIt depends on the index and the data size."),
    ("b.md", "B > What is an index?", "What is an index?\n\nA structure that makes vector search fast."),
    (
        "c.md",
        "C > Does Milvus support GPUs?",
        "Does Milvus support GPUs?\n\nYes, GPU indexes speed up search.",
    ),
    ("c.md", "C > What is BM25?", "What is BM25?\n\nA keyword ranking: rare shared words count most."),
]
LABELLED = [
    {"query": "Where does Milvus keep my data?", "lang": "en", "relevant": ["Where does Milvus store data?"]},
    {"query": "Is there a free version of Milvus?", "lang": "en", "relevant": ["Is Milvus free?"]},
    {"query": "Wo sind die Logs?", "lang": "de", "relevant": ["Where are the logs?"]},
    {"query": "How does keyword ranking work?", "lang": "en", "relevant": ["What is BM25?"]},
    {
        "query": "Milvus dans un fichier local ?",
        "lang": "fr",
        "relevant": ["What is Milvus Lite?", "Is Milvus free?"],
    },
]


@pytest.fixture(scope="module")
def collection(minilm, tmp_path_factory):
    """The test corpus in a Milvus Lite collection, built with pymilvus through helpers.store."""
    from helpers.chunking import Passage, stable_id
    from helpers.store import MilvusStore, connect

    client = connect(str(tmp_path_factory.mktemp("milvus") / "ex.db"))
    store = MilvusStore(client, "faq")
    store.create(minilm.dim, minilm.model_id)
    passages = [Passage(id=stable_id(s, t), text=t, source=s, title=ti) for s, ti, t in CORPUS]
    store.upsert(passages, minilm.encode_documents([p.text for p in passages]))
    yield client, "faq"
    client.close()


def hybrid_ids(client, name, vector, text, depth, top_k, k=60):
    from pymilvus import AnnSearchRequest, RRFRanker

    requests = [
        AnnSearchRequest(
            [vector.tolist()], "dense", {"metric_type": "IP", "params": {"ef": 64}}, limit=depth
        ),
        AnnSearchRequest([text], "sparse", {"metric_type": "BM25"}, limit=depth),
    ]
    return [h["id"] for h in client.hybrid_search(name, requests, ranker=RRFRanker(k), limit=top_k)[0]]


def test_fusion_depth(collection, minilm, capsys):
    client, name = collection
    question = "Where does Milvus keep the data I insert?"
    vector = minilm.encode_queries([question])[0]
    q1 = ex.FusionDepth(client, name, vector, question, depth=8, top_k=3, rrf_k=60)
    right = hybrid_ids(client, name, vector, question, 8, 3)
    assert verdict(q1, right, capsys).startswith("✓")
    shallow = hybrid_ids(client, name, vector, question, 3, 3)
    assert sorted(shallow) != sorted(right), "for this question the depth changes the fused top 3"
    stored = ex.Stored(client, name)
    others = [i for i in stored.ids if i not in right and i not in shallow][:3]
    assert_rejects(
        q1,
        [
            (shallow, "fusion of 3-deep lists"),
            (right[:2], "give the list of the 3"),
            (others, "not the top 3 of RRF"),
        ],
        capsys,
    )


def test_rrf_k(collection, minilm, capsys):
    client, name = collection
    vectors = minilm.encode_queries([q["query"] for q in LABELLED])
    q2 = ex.RrfK(client, name, LABELLED, vectors, [1, 60], top_k=2)
    shares = {}
    for k in (1, 60):
        found = 0
        for q, v in zip(LABELLED, vectors, strict=True):
            ids = hybrid_ids(client, name, v, q["query"], 2, 2, k)
            texts = {r["id"]: r["text"] for r in client.get(name, ids=ids, output_fields=["text"])}
            found += any(label in texts[i] for i in ids for label in q["relevant"])
        shares[k] = found / len(LABELLED)
    assert verdict(q2, shares, capsys).startswith("✓")
    assert_rejects(
        q2,
        [
            ({k: v * len(LABELLED) + 2 for k, v in shares.items()}, "not their count"),
            ({1: shares[1]}, "for k in [1, 60]"),
            ({k: 0.0 if v > 0.5 else 1.0 for k, v in shares.items()}, "the share differs"),
        ],
        capsys,
    )


def test_filtered_search(collection, minilm, capsys):
    client, name = collection
    vector = minilm.encode_queries(["Where does Milvus store data?"])[0]
    q3 = ex.FilteredSearch(client, name, vector, "b.md", top_k=3)
    hits = client.search(
        name,
        [vector.tolist()],
        anns_field="dense",
        limit=3,
        filter='source == "b.md"',
        search_params={"metric_type": "IP"},
    )[0]
    right = [h["id"] for h in hits]
    unfiltered = [h["id"] for h in client.search(name, [vector.tolist()], anns_field="dense", limit=3)[0]]
    assert verdict(q3, right, capsys).startswith("✓")
    assert_rejects(
        q3,
        [
            (unfiltered, "come from another file"),
            (right[::-1], "not the best ones within it"),
            (right[:2], "expected 3 hits"),
        ],
        capsys,
    )


# ---- 04 ----------------------------------------------------------------------------------------------------

RERANK_DOCS = [text for _, _, text in CORPUS[:5]]


def test_p_yes_by_hand(tiny_cross_encoder, base_settings, capsys):
    import torch
    from transformers import AutoModelForCausalLM

    from helpers.offline.standins import TINY_RERANKER_ID, model_path

    question, instruction = "Where does Milvus store data?", "Judge whether the passage says where data lives"
    path = model_path(TINY_RERANKER_ID, base_settings.cache_dir)
    lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok = tiny_cross_encoder.tokenizer
    tok.padding_side = "left"
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    batch = tok(
        [ex.rerank_prompt(question, d, instruction) for d in RERANK_DOCS], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        logits = lm(**batch, logits_to_keep=1).logits[:, -1, :]
    right = torch.softmax(torch.stack([logits[:, no], logits[:, yes]], dim=1), dim=1)[:, 1].numpy()
    whole_vocab = torch.softmax(logits, dim=1)[:, yes].numpy()
    q1 = ex.PYesByHand(tiny_cross_encoder, question, RERANK_DOCS, instruction)
    assert verdict(q1, right, capsys).startswith("✓")
    default = q1.predict(ex.DEFAULT_RERANK_INSTRUCTION)
    assert not np.allclose(default, right, atol=1e-4)  # the instruction changes the stand-in's scores too
    assert_rejects(
        q1,
        [
            (1 - right, "these are P(no)"),
            (default, "under the default instruction"),
            (whole_vocab, "not the vocabulary"),
            (right[:3], "one P(yes) per candidate"),
        ],
        capsys,
    )


def test_candidate_tokens(tiny_cross_encoder, capsys):
    tok = tiny_cross_encoder.tokenizer
    question = "Where does Milvus store data?"
    q2 = ex.CandidateTokens(tok, question, RERANK_DOCS, [2, 4])

    def prompt(d):
        return (
            ex.RERANK_PREFIX
            + f"<Instruct>: {ex.DEFAULT_RERANK_INSTRUCTION}\n<Query>: {question}\n<Document>: {d}"
            + ex.RERANK_SUFFIX
        )

    right = {k: sum(len(tok(prompt(d)).input_ids) for d in RERANK_DOCS[:k]) for k in (2, 4)}
    assert verdict(q2, right, capsys).startswith("✓")
    assert_rejects(
        q2,
        [
            ({k: sum(len(prompt(d)) for d in RERANK_DOCS[:k]) for k in (2, 4)}, "that counts characters"),
            ({k: sum(len(tok(d).input_ids) for d in RERANK_DOCS[:k]) for k in (2, 4)}, "the passages alone"),
            ({k: v + 1 for k, v in right.items()}, "the token count differs"),
            ({2: right[2]}, "for k in [2, 4]"),
        ],
        capsys,
    )


def test_rerank_order(tiny_cross_encoder, capsys):
    import torch

    question = "Where does Milvus store data?"
    candidates = [(f"id{n}", RERANK_DOCS[n]) for n in (2, 0, 3, 1, 4)]  # an order that is not the stand-in's
    scores = tiny_cross_encoder.predict(
        [(question, d) for _, d in candidates],
        activation_fn=torch.nn.Sigmoid(),
        processing_kwargs={"chat_template": {"instruction": ex.DEFAULT_RERANK_INSTRUCTION}},
    )
    given = [i for i, _ in candidates]
    right = [given[n] for n in np.argsort(-scores, kind="stable")]
    assert right != given, "the stand-in's order must differ from the input order for this test"
    q3 = ex.RerankOrder(tiny_cross_encoder, question, candidates)
    assert verdict(q3, right, capsys).startswith("✓")
    swapped = [right[1], right[0], *right[2:]]
    assert_rejects(
        q3,
        [
            (right[::-1], "the order is reversed"),
            (given, "that is hybrid search's order"),
            (swapped if swapped != given else [right[0], right[2], right[1], *right[3:]], "not in order"),
            (right[:-1], "each once"),
        ],
        capsys,
    )


# ---- 05 ----------------------------------------------------------------------------------------------------


def test_refusal_threshold(collection, minilm, capsys):
    client, name = collection
    stored = ex.Stored(client, name)
    off_topic = ["What is the capital of France?", "How do I bake bread?"]
    languages = {q["query"]: q["lang"] for q in LABELLED}
    q1 = ex.RefusalThreshold(minilm.encode_queries, stored, languages, off_topic)

    def best(texts):
        return {
            t: float((stored.vectors @ v).max())
            for t, v in zip(texts, minilm.encode_queries(texts), strict=True)
        }

    on_topic = [q["query"] for q in LABELLED]
    on, off = best(on_topic), best(off_topic)
    threshold = max(off.values()) + 1e-4
    refused = [q for q in on_topic if on[q] < threshold]
    assert verdict(q1, (threshold, on_topic, refused), capsys).startswith("✓")
    english = [q["query"] for q in LABELLED if q["lang"] == "en"]
    assert_rejects(
        q1,
        [
            (
                (threshold, english, [q for q in english if on[q] < threshold]),
                "no in-corpus question in de, fr",
            ),
            ((min(off.values()), on_topic, []), "off-topic question(s) score above the threshold"),
            (
                (threshold, on_topic, [*refused, on_topic[0]] if on_topic[0] not in refused else []),
                "list is off",
            ),
            ((threshold, [*on_topic, "Not a labelled question?"], refused), "not labelled questions"),
        ],
        capsys,
    )


def test_citation_checker(capsys):
    import re

    q2 = ex.CitationChecker()

    def right(answer, titles):
        return [c for c in re.findall(r"\[([^\[\]]+)\](?!\()", answer) if c not in titles]

    def takes_links(answer, titles):
        return [c for c in re.findall(r"\[([^\[\]]+)\]", answer) if c not in titles]

    def one_per_answer(answer, titles):
        found = re.search(r"\[([^\[\]]+)\](?!\()", answer)
        return [found.group(1)] if found and found.group(1) not in titles else []

    assert verdict(q2, right, capsys).startswith("✓")
    assert_rejects(
        q2,
        [
            (takes_links, "a markdown link [text](url) is not a citation"),
            (one_per_answer, "two citations side by side"),
            (lambda answer, titles: [], "your function returns []"),
            ("not a function", "give your function"),
        ],
        capsys,
    )


def test_source_filter(collection, minilm, capsys):
    client, name = collection
    stored = ex.Stored(client, name)
    vector = minilm.encode_queries(["Where does Milvus store data?"])[0]
    q3 = ex.SourceFilter(stored, vector, "b.md", 2)
    hits = client.search(
        name,
        [vector.tolist()],
        anns_field="dense",
        limit=2,
        filter='source == "b.md"',
        output_fields=["title"],
        search_params={"metric_type": "IP"},
    )[0]
    right = [h["entity"]["title"] for h in hits]
    unfiltered = client.search(name, [vector.tolist()], anns_field="dense", limit=2, output_fields=["title"])[
        0
    ]
    assert verdict(q3, right, capsys).startswith("✓")
    assert_rejects(
        q3,
        [
            ([h["entity"]["title"] for h in unfiltered], "come from another file"),
            (right[::-1], "not the best ones within it"),
            (right[:1], "expected 2 titles"),
        ],
        capsys,
    )


# ---- 06 ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluation(collection, minilm):
    client, name = collection
    return ex._Evaluation(
        ex.Stored(client, name), LABELLED, minilm.encode_queries([q["query"] for q in LABELLED])
    )


def first_ranks(ev, orders):
    """1-based rank of each question's first relevant passage in the top 10, by hand; None if absent."""
    out = []
    for order, rel in zip(orders, ev.relevant, strict=True):
        out.append(next((r for r, i in enumerate(list(order)[:10], start=1) if rel[i]), None))
    return out


def mean_rr(ranks):
    return float(np.mean([1 / r if r else 0.0 for r in ranks]))


def test_weighted_fusion(evaluation, capsys):
    from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

    ev, k = evaluation, 4

    def mrr(ranker):
        orders = []
        for q, v in zip(ev.questions, ev.vectors, strict=True):
            reqs = [
                AnnSearchRequest([v.tolist()], "dense", {"metric_type": "IP"}, limit=k),
                AnnSearchRequest([q["query"]], "sparse", {"metric_type": "BM25"}, limit=k),
            ]
            hits = ev.stored.client.hybrid_search(ev.stored.collection, reqs, ranker=ranker, limit=k)[0]
            orders.append([ev.stored.ids.index(h["id"]) for h in hits])
        return mean_rr(first_ranks(ev, orders))

    weighted, fused = mrr(WeightedRanker(0.7, 0.3)), mrr(RRFRanker(60))
    q1 = ex.WeightedFusion(ev, (0.7, 0.3), k)
    assert verdict(q1, weighted, capsys).startswith("✓")
    wrong = [(1.5, "between 0 and 1"), (weighted - 0.2 if weighted > 0.3 else weighted + 0.2, "differs from")]
    if abs(fused - weighted) > 1e-3:
        wrong.append((fused, "that is RRF hybrid's MRR@10"))
    assert_rejects(q1, wrong, capsys)


def test_instruction_effect(evaluation, minilm, capsys):
    ev = evaluation
    vectors = minilm.model.encode_query([q["query"] for q in ev.questions], normalize_embeddings=True)
    value = mean_rr(first_ranks(ev, np.argsort(-(vectors @ ev.stored.vectors.T), axis=1)))
    q2 = ex.InstructionEffect(ev, minilm.model, instruction_aware=False)
    assert verdict(q2, (value, value), capsys).startswith("✓")
    assert_rejects(
        q2,
        [
            ((value + 0.2, value), "the first value differs"),
            ((value, value + 0.2), "the second value differs"),
            ((value,), "give a pair"),
        ],
        capsys,
    )


def test_recall_curve(evaluation, capsys):
    ev = evaluation
    order = np.argsort(-(np.asarray(ev.vectors) @ ev.stored.vectors.T), axis=1)
    found = {k: [ev.relevant[n][order[n, :k]].sum() for n in range(len(ev.questions))] for k in (1, 2, 3)}
    total = ev.relevant.sum(axis=1)
    recall = {k: float(np.mean(np.array(found[k]) / total)) for k in (1, 2, 3)}
    hit = {k: float(np.mean(np.array(found[k]) > 0)) for k in (1, 2, 3)}
    assert any(abs(recall[k] - hit[k]) > 1e-3 for k in recall), (
        "a question with two relevant passages tells them apart"
    )
    q3 = ex.RecallCurve(ev, 3)
    assert verdict(q3, recall, capsys).startswith("✓")
    assert_rejects(
        q3,
        [
            (hit, "that is hit@k"),
            ({1: recall[1], 2: recall[2]}, "every k from 1 to 3"),
            (
                {k: min(1.0, v + 0.3) if v < 0.7 else v - 0.3 for k, v in recall.items()},
                "your recall differs",
            ),
        ],
        capsys,
    )


class FakeEvaluation:
    """Dense and hybrid orders chosen by hand: what QuestionsNeeded reads from an evaluation."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.relevant = np.zeros((30, 6), dtype=bool)
        self.relevant[:, 0] = True  # passage 0 is each question's relevant one
        self.dense = [rng.permutation(6) for _ in range(30)]
        self.hybrid = [rng.permutation(6) for _ in range(30)]

    def dense_orders(self):
        return np.array(self.dense)

    def hybrid_orders(self, depth):
        return [list(o[:depth]) for o in self.hybrid]


def test_questions_needed(capsys):
    import math

    from scipy.stats import norm

    ev = FakeEvaluation()
    rr = lambda orders: np.array([1 / (1 + list(o).index(0)) if 0 in list(o) else 0.0 for o in orders])  # noqa: E731
    dense, hybrid = rr(ev.dense), rr(ev.hybrid)
    diff = dense - hybrid
    assert abs(diff.mean()) > 1e-3

    def n(sd, power=0.9):
        return math.ceil(((norm.ppf(0.975) + norm.ppf(power)) * sd / diff.mean()) ** 2)

    q4 = ex.QuestionsNeeded(ev, depth=6, power=0.9)
    assert verdict(q4, n(diff.std(ddof=1)), capsys).startswith("✓")
    assert_rejects(
        q4,
        [
            (n(diff.std(ddof=1), 0.8), "that is the number for 80% power"),
            (n(dense.std(ddof=1)), "not of one strategy's scores"),
            (n(diff.std(ddof=1)) * 3 + 50, "your number differs"),
        ],
        capsys,
    )


def test_questions_needed_on_a_tie(evaluation, capsys):
    import math

    q4 = ex.QuestionsNeeded(evaluation, depth=4, power=0.9)  # on the test corpus dense and hybrid tie
    dense, hybrid = q4.per_question()
    assert abs((dense - hybrid).mean()) < 1e-12
    assert verdict(q4, math.inf, capsys).startswith("✓")
    assert_rejects(q4, [(100, "tie on average")], capsys)


# ---- 07 ----------------------------------------------------------------------------------------------------


def test_ranks_for_07_are_what_pymilvus_returns(collection, minilm):
    client, name = collection
    ranks = ex._Ranks(ex.Stored(client, name), minilm.model, LABELLED)
    sparse = {"metric_type": "BM25"}
    for q, row in zip(LABELLED, ranks.rows, strict=True):
        vector = minilm.model.encode_query([q["query"]], normalize_embeddings=True)[0].tolist()
        dense = client.search(name, [vector], anns_field="dense", limit=10)[0]
        bm25 = client.search(name, [q["query"]], anns_field="sparse", limit=10, search_params=sparse)[0]
        for strategy, hits in (("dense", dense), ("bm25", bm25)):
            rows = client.get(name, ids=[h["id"] for h in hits], output_fields=["text"])
            text = {r["id"]: r["text"] for r in rows}
            relevant = [any(label in text[h["id"]] for label in q["relevant"]) for h in hits]
            assert row[strategy] == (relevant.index(True) + 1 if any(relevant) else None), q["query"]
    assert ranks.row(2) == ranks.rows[1] and ranks.row(LABELLED[1]["query"]) == ranks.rows[1]


def _ranks(rows: list[dict]):
    """A `_Ranks` with the given rows, to drive the checks' verdicts through every case."""
    ranks = object.__new__(ex._Ranks)
    ranks.rows = rows
    return ranks


RANK_ROWS = [
    {"line": 1, "lang": "en", "query": "a", "dense": 1, "bm25": 3},
    {"line": 2, "lang": "en", "query": "b", "dense": 4, "bm25": 1},
    {"line": 3, "lang": "de", "query": "c", "dense": None, "bm25": 2},
    {"line": 4, "lang": "fr", "query": "d", "dense": 2, "bm25": 2},
    {"line": 5, "lang": "ja", "query": "e", "dense": 1, "bm25": None},
]


def test_bm25_wins(capsys):
    q1 = ex.Bm25Wins(_ranks(RANK_ROWS))
    assert verdict(q1, 2, capsys).startswith("✓") and verdict(q1, "c", capsys).startswith("✓")
    assert_rejects(
        q1,
        [
            (1, "dense wins"),
            (4, "a tie"),
            (5, "does not find the relevant passage"),
            (99, "neither the line number nor the text"),
        ],
        capsys,
    )


def test_other_languages(capsys):
    q2 = ex.OtherLanguages(_ranks(RANK_ROWS))
    assert verdict(q2, {"dense": 2, "bm25": 2}, capsys).startswith("✓")
    assert_rejects(
        q2,
        [
            ({"dense": 4, "bm25": 4}, "include the English questions"),
            ({"dense": 1, "bm25": 0}, "count rank 1 only"),
            ({"dense": 2, "bm25": 3}, "the count for bm25 is off"),
            ([2, 2], "give a dict"),
        ],
        capsys,
    )


def test_rrf_by_hand(collection, minilm, capsys):
    from pymilvus import AnnSearchRequest, RRFRanker

    client, name = collection
    question = "Where does Milvus keep the data I insert?"
    q3 = ex.RrfByHand(ex.Stored(client, name), minilm.model, question)
    vector = minilm.model.encode_query([question], normalize_embeddings=True)[0].tolist()
    requests = [
        AnnSearchRequest([vector], "dense", {"metric_type": "IP", "params": {"ef": 64}}, limit=10),
        AnnSearchRequest([question], "sparse", {"metric_type": "BM25"}, limit=10),
    ]
    top = client.hybrid_search(name, requests, ranker=RRFRanker(60), limit=1)[0][0]
    assert verdict(q3, top["distance"], capsys).startswith("✓")  # Milvus' own fused score
    one_term = 1 / (60 + q3.lists[0].index(top["id"]) + 1)  # the dense list's term alone
    from_zero = sum(1 / (59 + ids.index(top["id"]) + 1) for ids in q3.lists if top["id"] in ids)
    assert_rejects(
        q3,
        [(one_term, "one list's term only"), (from_zero, "ranks start at 1"), (0.5, "not the fused score")],
        capsys,
    )
