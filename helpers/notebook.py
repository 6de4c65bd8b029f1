"""Small conveniences for the course notebooks: stable output, the models banner, short tables."""

from __future__ import annotations

import os
import random
import warnings

from helpers.config import Settings, get_settings
from helpers.models import ModelChoice, choose_models


def setup_notebook(seed: int = 0) -> tuple[Settings, ModelChoice]:
    """Seed everything, quiet known-noisy libraries, set table display; return settings and models."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    # tqdm.auto without ipywidgets warns once per kernel; the course's progress bars are plain text.
    warnings.filterwarnings("ignore", message=".*IProgress not found.*")
    import numpy as np
    import pandas as pd

    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # 00_setup runs before everything is installed
        pass
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    pd.set_option("display.precision", 4)
    pd.set_option("display.max_colwidth", 90)
    pd.set_option("display.width", 140)
    settings = get_settings()
    return settings, choose_models(settings)


def models_note(choice: ModelChoice) -> str:
    """One paragraph that says which models produced a notebook's outputs."""
    text = f"Outputs below were produced with the {choice.kit} kit: embedding {choice.embedding_model}"
    if choice.reranker_is_stand_in:
        return (
            text + f"; reranker {choice.reranker_model}, a tiny stand-in with RANDOM weights whose "
            "scores mean nothing (the real Qwen3-Reranker-0.6B separates relevant from irrelevant "
            "passages). Set RAG_MODELS=qwen3 with internet access for the real models."
        )
    return text + f"; reranker {choice.reranker_model}."


def shorten(text: str, width: int = 90) -> str:
    """One line of at most `width` characters, for tables."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
