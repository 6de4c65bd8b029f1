"""Replicas of the two Qwen3 hub repositories, and the reranker as a sequence classifier (test support).

A replica has Qwen/Qwen3-Embedding-0.6B's or Qwen/Qwen3-Reranker-0.6B's files and sizes (from the hub's
config.json recorded in tests/data) but 1 layer of random weights, so CI runs the real `qwen3` code path
without the hub: point RAG_EMBEDDING_MODEL / RAG_RERANKER_MODEL at the folders with RAG_MODELS=qwen3.
`python tests/qwen3_replicas.py [CACHE_DIR]` builds both and prints their folders.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from helpers.config import QWEN3_EMBEDDING_ID, QWEN3_RERANKER_ID, get_settings
from helpers.offline.standins import build_model
from helpers.offline.tokenizer import TOKENIZER_FILES

HUB_CONFIG = json.loads((Path(__file__).parent / "data" / "qwen3_hub_config.json").read_text())
SHAPE_KEYS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
)
# The published 0.6B shape (both repositories share it): the benchmarks build random models of it.
QWEN3_06B_SHAPE = {key: HUB_CONFIG[QWEN3_EMBEDDING_ID][key] for key in SHAPE_KEYS}
REPLICA_LAYERS = 1  # runs the decoder layer's real code; each layer more costs CI time and tests nothing new
REPOS = {"embedding": QWEN3_EMBEDDING_ID, "reranker": QWEN3_RERANKER_ID}


def build_replica(kind: str, cache_root: str | Path) -> Path:
    """Build (once) the replica of the `embedding` or `reranker` hub repository; return its folder."""
    repo = REPOS[kind]
    readme = (
        f"# Replica of {repo}\n\nThe hub repository's files and sizes, except {REPLICA_LAYERS} layer(s) "
        "instead of 28, with random weights (tests/qwen3_replicas.py). It runs the real Qwen3 code path "
        "offline; its vectors and scores mean nothing.\n"
    )
    shape = {**QWEN3_06B_SHAPE, "num_hidden_layers": REPLICA_LAYERS}
    dest = Path(cache_root) / "replicas" / repo.split("/")[-1]
    return build_model(kind, dest, shape, cache_root, dtype="bfloat16", readme=readme)


def as_sequence_classifier(reranker_dir: Path, dest: Path) -> Path:
    """Qwen3-Reranker (a causal LM) as a one-logit sequence classifier that a rerank server can load.

    The classifier's weight row is lm_head["yes"] - lm_head["no"], so its logit is the reranker's log-odds
    and its sigmoid the model card's P("yes"): the conversion vLLM does at load time for
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
    for name in TOKENIZER_FILES:
        shutil.copyfile(reranker_dir / name, dest / name)
    return dest


if __name__ == "__main__":
    cache = sys.argv[1] if len(sys.argv) > 1 else get_settings().cache_dir
    for kind in REPOS:
        print(build_replica(kind, cache))
