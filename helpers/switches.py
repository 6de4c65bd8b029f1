"""Every process-wide switch the course flips, in one place, each with its reason.

Library code (settings, loading, storing, searching) changes no global state. The entry points call
these once: the CLI (`python -m helpers`), `setup_notebook` and the benchmarks.

One library does it on its own: the first `import pymilvus` loads the repository's `.env` into
`os.environ` (its settings module calls python-dotenv's `load_dotenv`) and rejects a file path in
MILVUS_URI; `helpers.store.import_pymilvus` hides such a path from that import and restores it.
"""

from __future__ import annotations

import os
import random
import warnings


def configure_process(device: str = "auto") -> None:
    """Quiet known-noisy libraries and pick the CUDA attention kernels; `device` is the requested one."""
    # gRPC's C core logs keepalive chatter ("too_many_pings") from a local Milvus Lite server to stderr;
    # real failures still surface as pymilvus exceptions. Read when grpc loads, so set it first.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    # Hugging Face tokenizers warn on every fork after first use (Jupyter and subprocesses fork).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    # The per-tensor "Loading weights" bar and hub/cache notices are noise in notebooks and logs.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if device in ("auto", "cuda") or device.startswith("cuda:"):
        import torch

        if torch.cuda.is_available():
            # cuDNN's fused attention builds an execution plan for every new padded length (about 10 ms
            # of CPU each, measured on an H100), and batches of text have many lengths: use the flash /
            # memory-efficient SDPA kernels instead.
            torch.backends.cuda.enable_cudnn_sdp(False)


def configure_notebook(seed: int = 0, device: str = "auto") -> None:
    """`configure_process`, plus seeded generators and table display options, for a notebook kernel."""
    import numpy as np
    import pandas as pd

    # tqdm.auto without ipywidgets warns once per kernel; the course draws its own progress lines.
    warnings.filterwarnings("ignore", message=".*IProgress not found.*")
    random.seed(seed)
    np.random.seed(seed)
    pd.set_option("display.precision", 4)
    pd.set_option("display.max_colwidth", 90)
    pd.set_option("display.width", 140)
    try:
        import torch
    except ImportError:  # 00_setup runs before everything is installed
        return
    torch.manual_seed(seed)
    configure_process(device)
