"""What the benchmarks load besides the course's models: the published Qwen3-0.6B shape with random weights
(timing and memory only, never quality), and dynamic int8 quantisation on a CPU."""

from __future__ import annotations

import warnings
from pathlib import Path

from qwen3_replicas import QWEN3_06B_SHAPE

from helpers.config import Settings
from helpers.offline.standins import build_model


def random_06b(kind: str, settings: Settings) -> str:
    """The folder of a random-weight Qwen3 `embedding` or `reranker` of the published 0.6B shape.

    Built once into the cache (about 2.4 GB of float32 weights each); pass it as the model id to
    `load_embedder` / `load_reranker`.
    """
    dest = Path(settings.cache_dir) / "stand-ins" / f"0.6b-qwen3-{kind}"
    readme = f"# Qwen3-0.6B-shaped {kind}, random weights\n\nFor timing and memory benchmarks only.\n"
    return str(build_model(kind, dest, QWEN3_06B_SHAPE, settings.cache_dir, readme=readme))


def quantize_int8(model):
    """Dynamic int8 quantisation (CPU) of every Linear layer but the LM head; returns the model.

    Weights become int8 once (one scale per output channel); activations are quantised per call with one
    scale per tensor, so a text's vector depends slightly on its batch-mates. The LM head stays fp32: the
    reranker reads two of its logits, and it is a small share of the work.
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head")
    }
    with warnings.catch_warnings():
        # torch.ao's eager quantisation is deprecated in favour of torchao, whose int8 path ran 18x slower
        # than fp32 on this project's AVX2 CPU in eager mode; this one runs on fbgemm kernels.
        warnings.simplefilter("ignore", (DeprecationWarning, UserWarning, FutureWarning))
        return quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)
