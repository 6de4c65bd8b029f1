"""The notebooks' self-checking exercises (notebooks/exercises.py).

Each check accepts a right answer and rejects typical wrong ones, each with its own message, against truths it
computes itself.
"""

from __future__ import annotations

import sys

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
