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
