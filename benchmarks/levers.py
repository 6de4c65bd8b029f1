"""Which speed levers earn their code: each against the library's own batched call, on the same inputs.

Embedding (documents, no prompt), baseline `SentenceTransformer.encode_document` at its best batch size
(which is also what helpers' Embedder calls, so it is no lever of its own):
* `packed_varlen`: no padding at all. Texts are tokenized once, packed into rows of at most `budget`
  tokens, and each row runs as one sequence whose attention is cut per text by `cu_seqlens`
  (PyTorch's flash-attention `varlen_attn`, registered as a transformers attention function);
  the embedding is the last token's hidden state, as in last-token pooling.
* `packed_varlen_compiled`: the same under `torch.compile` (fuses RMSNorm, RoPE, SiLU-and-multiply).
* `--only compile`: `torch.compile` on the library's own padded batches, to attribute the compiled gain.

Reranking (10 candidates of about 300 tokens), baseline the model card's full-vocabulary reference
(tests/reference_reranker.py):
* `fast_cross_encoder`: helpers' Reranker, i.e. the library's batched `CrossEncoder.predict` (the last
  position's logits only);
* `yes_minus_no`: the sequence-classification form serving engines use: one output row holding the
  difference of the "yes" and "no" rows of the LM head, read from the last hidden state, with the
  prompt's prefix and suffix tokenized once.

`python -m benchmarks levers [--quick | --smoke]`. The reference runs only when its full-vocabulary logits fit
in memory (`benchmarks.rerank.reference_skip_reason`). The packed path needs CUDA (flash kernels); on a CPU a
per-text reference of the same attention checks the code, and only correctness is reported.
"""

from __future__ import annotations

import inspect
import time

import numpy as np

from benchmarks.common import GPU_PEAK_BF16, RANDOM_LABEL, Peak, best_of, sync
from benchmarks.corpus import QUESTIONS, faq_passages, synthetic

VARLEN = "course_varlen"
SMOKE_TEXTS = 12
SMOKE_CANDIDATES = 3


def _register_varlen(device: str) -> None:
    """Register a transformers attention function that runs `varlen_attn` over cu_seqlens (no mask)."""
    import torch
    from transformers import AttentionInterface

    def attend(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        # transformers passes (batch=1, heads, tokens, head_dim); varlen wants (tokens, heads, head_dim).
        q, k, v = (x[0].transpose(0, 1) for x in (query, key, value))
        cu, longest = kwargs["cu_seq_lens_q"], kwargs["max_length_q"]
        if device.startswith("cuda"):
            from torch.nn.attention.varlen import varlen_attn

            params = inspect.signature(varlen_attn).parameters
            if "enable_gqa" not in params:  # older PyTorch: repeat the key/value heads ourselves
                groups = q.shape[1] // k.shape[1]
                k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
            extra = {"enable_gqa": True} if "enable_gqa" in params else {}
            extra |= {"window_size": (-1, 0)} if "window_size" in params else {"is_causal": True}
            out = varlen_attn(q, k, v, cu, cu, longest, longest, scale=scaling, **extra)
        else:  # the same maths per text, for checking the code on a CPU
            groups = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
            out = torch.empty_like(q)
            for a, b in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True):
                out[a:b] = torch.nn.functional.scaled_dot_product_attention(
                    q[a:b].transpose(0, 1),
                    k[a:b].transpose(0, 1),
                    v[a:b].transpose(0, 1),
                    is_causal=True,
                    scale=scaling,
                ).transpose(0, 1)
        return out[None], None  # (batch, tokens, heads, head_dim), like transformers' sdpa function

    AttentionInterface.register(VARLEN, attend)


def pack(lengths: list[int], budget: int) -> list[list[int]]:
    """Indices, longest first, in rows whose lengths add up to at most `budget` tokens (no padding)."""
    rows: list[list[int]] = []
    used: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, total in enumerate(used):  # first fit: short texts fill the gaps long ones leave
            if total + lengths[i] <= budget:
                rows[r].append(i)
                used[r] += lengths[i]
                break
        else:
            rows.append([i])
            used.append(lengths[i])
    return rows


class PackedEmbedder:
    """Last-token embeddings of a decoder model over padding-free packed rows (the `packed_varlen` lever)."""

    def __init__(self, st, budget: int, compiled: bool = False):
        import torch

        self.st, self.budget = st, budget
        self.hf = st[0].model
        self.device = next(self.hf.parameters()).device
        _register_varlen(str(self.device))
        self.hf.set_attn_implementation(VARLEN)
        self.forward = torch.compile(self.hf, dynamic=True) if compiled else self.hf

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings in input order."""
        import torch

        ids = self.st.tokenizer(texts, truncation=True, max_length=self.st.max_seq_length)["input_ids"]
        out = torch.empty(len(texts), self.hf.config.hidden_size, dtype=torch.float32, device=self.device)
        with torch.inference_mode():
            for row in pack([len(x) for x in ids], self.budget):
                lengths = torch.tensor([len(ids[i]) for i in row])
                flat = torch.tensor([t for i in row for t in ids[i]], device=self.device)[None]
                starts = torch.cumsum(lengths, 0) - lengths
                positions = (torch.arange(int(lengths.sum())) - starts.repeat_interleave(lengths))[None]
                cu = torch.nn.functional.pad(torch.cumsum(lengths, 0), (1, 0)).to(self.device, torch.int32)
                hidden = self.forward(
                    input_ids=flat,
                    position_ids=positions.to(self.device),
                    cu_seq_lens_q=cu,
                    cu_seq_lens_k=cu,
                    max_length_q=int(lengths.max()),
                    max_length_k=int(lengths.max()),
                ).last_hidden_state[0]
                out[row] = hidden[cu[1:].long() - 1].float()  # each text's last token (<|endoftext|>)
        return torch.nn.functional.normalize(out, dim=-1).cpu().numpy()


def _tokens(st, texts: list[str]) -> int:
    return sum(
        len(x) for x in st.tokenizer(texts, truncation=True, max_length=st.max_seq_length)["input_ids"]
    )


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a.astype(np.float64) * b.astype(np.float64), axis=1)))


def embed_levers(
    st, texts: list[str], device: str, batch_sizes, budgets, repeats: int, only: str = ""
) -> dict:
    """Throughput of each lever against st.encode_document's best batch size, vectors compared by cosine."""
    tokens = _tokens(st, texts)
    t = time.perf_counter()
    _tokens(st, texts)
    tokenize_s = time.perf_counter() - t

    def timed(fn):
        fn(texts[:64])  # warm-up at a small shape
        sync(device)
        peak = Peak(device)
        with peak.measure():
            seconds, vectors = best_of(lambda: fn(texts), repeats, device)
        return {
            "seconds": round(seconds, 3),
            "tokens_per_s": round(tokens / seconds, 1),
            "peak_growth_mb": round(peak.growth / 2**20, 1),
        }, vectors

    baseline = {}
    for bs in batch_sizes:
        baseline[bs] = timed(
            lambda xs, bs=bs: st.encode_document(
                xs, batch_size=bs, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        )
    best_bs = max(baseline, key=lambda bs: baseline[bs][0]["tokens_per_s"])
    base_row, base_vecs = baseline[best_bs]
    rows = {
        "baseline_st_encode": {
            **base_row,
            "batch_size": best_bs,
            "by_batch_size": {str(b): r[0]["tokens_per_s"] for b, r in baseline.items()},
        }
    }

    def add(name: str, fn, **extra):
        try:
            row, vecs = timed(fn)
        except Exception as exc:  # a lever this PyTorch lacks (e.g. no varlen_attn) is reported, not fatal
            rows[name] = {**extra, "error": f"{type(exc).__name__}: {exc}"[:300]}
            return
        rows[name] = {
            **row,
            **extra,
            "speedup_vs_st_encode": round(row["tokens_per_s"] / base_row["tokens_per_s"], 3),
            "min_cosine_vs_st_encode": round(_min_cosine(vecs, base_vecs), 6),
        }

    if only == "compile":  # attribute the compiled gain: torch.compile on the library's padded batches
        import torch

        plain = st[0].model  # the Transformer module's Hugging Face model
        st[0].model = torch.compile(plain, dynamic=True)
        t = time.perf_counter()
        st.encode_document(texts[:2048], batch_size=best_bs, show_progress_bar=False)
        sync(device)
        warmup = round(time.perf_counter() - t, 1)
        add(
            f"st_encode_compiled_batch_{best_bs}",
            lambda xs: st.encode_document(
                xs,
                batch_size=best_bs,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ),
            batch_size=best_bs,
            compile_warmup_s=warmup,
        )
        st[0].model = plain
        budgets = ()
    for budget in budgets:
        add(f"packed_varlen_{budget}", PackedEmbedder(st, budget).encode, token_budget=budget)
    if budgets and device.startswith("cuda") and "error" not in rows[f"packed_varlen_{budgets[-1]}"]:
        budget = budgets[-1]
        compiled = PackedEmbedder(st, budget, compiled=True)
        t = time.perf_counter()
        try:
            compiled.encode(texts[:512])
            sync(device)
            add(
                f"packed_varlen_compiled_{budget}",
                compiled.encode,
                token_budget=budget,
                compile_warmup_s=round(time.perf_counter() - t, 1),
            )
        except Exception as exc:
            rows[f"packed_varlen_compiled_{budget}"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    st[0].model.set_attn_implementation("sdpa")
    result = {"texts": len(texts), "tokens": tokens, "tokenize_s": round(tokenize_s, 3), "rows": rows}
    if device.startswith("cuda"):
        import torch

        peak = next((v for k, v in GPU_PEAK_BF16.items() if k in torch.cuda.get_device_name(0)), None)
        if peak:
            cfg = st[0].model.config
            params = sum(p.numel() for n, p in st.named_parameters() if "embed" not in n)
            seq = tokens / len(texts)
            flops = 2 * params + 4 * cfg.num_hidden_layers * seq * cfg.num_attention_heads * cfg.head_dim
            for row in rows.values():
                row["mfu"] = round(row["tokens_per_s"] * flops / peak, 4)
    return result


def yes_minus_no_scores(ce, query: str, documents: list[str], instruction: str | None = None) -> np.ndarray:
    """P(yes) from one output row (w_yes - w_no) on the last hidden state; prefix/suffix tokenized once."""
    import torch
    from reference_reranker import format_instruction

    from helpers.rerank import PREFIX, SUFFIX

    model, tok = ce.model, ce.tokenizer
    head = getattr(model, "_yes_minus_no", None)
    if head is None:
        weight = model.get_output_embeddings().weight
        yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
        head = model._yes_minus_no = (weight[yes] - weight[no]).detach()
        model._prefix = tok.encode(PREFIX, add_special_tokens=False)
        model._suffix = tok.encode(SUFFIX, add_special_tokens=False)
    # The user turn between the prompt's fixed prefix and suffix, as helpers.rerank.render lays it out.
    bodies = tok([format_instruction(instruction, query, d) for d in documents], add_special_tokens=False)[
        "input_ids"
    ]
    rows = [model._prefix + b + model._suffix for b in bodies]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):  # left padding: every row's last position is its real last token
        ids[i, width - len(r) :] = torch.tensor(r)
        mask[i, width - len(r) :] = 1
    with torch.inference_mode():
        hidden = model.model(
            input_ids=ids.to(model.device), attention_mask=mask.to(model.device)
        ).last_hidden_state
        logit = hidden[:, -1] @ head
    return torch.sigmoid(logit.float()).cpu().numpy()


def rerank_levers(ce, docs: list[str], device: str, repeats: int) -> dict:
    """The reference, the CrossEncoder fast path and the yes-minus-no head on the same pairs.

    Skipped, with the reason, when the reference's full-vocabulary logits do not fit in memory.
    """
    from reference_reranker import reference_scores

    from benchmarks.rerank import reference_skip_reason
    from helpers.rerank import Reranker

    query = QUESTIONS[0]
    skip = reference_skip_reason(ce.model, ce.tokenizer, query, docs, device)
    if skip is not None:
        return {"candidates": len(docs), "skipped": skip}
    fast = Reranker(ce, "levers")
    ways = {
        "reference": lambda: reference_scores(ce.model, ce.tokenizer, query, docs),
        "fast_cross_encoder": lambda: fast.score(query, docs),
        "yes_minus_no": lambda: yes_minus_no_scores(ce, query, docs),
    }
    for fn in ways.values():  # warm-up
        fn()
    sync(device)
    rows, outputs = {}, {}
    for name, fn in ways.items():
        peak = Peak(device)
        with peak.measure():
            seconds, outputs[name] = best_of(fn, repeats, device)
        rows[name] = {
            "seconds": round(seconds, 4),
            "pairs_per_s": round(len(docs) / seconds, 2),
            "peak_growth_mb": round(peak.growth / 2**20, 1),
        }
    ref = np.asarray(outputs["reference"], dtype=np.float64)
    for name in ("fast_cross_encoder", "yes_minus_no"):
        rows[name]["speedup_vs_reference"] = round(rows["reference"]["seconds"] / rows[name]["seconds"], 3)
        rows[name]["max_abs_diff_vs_reference"] = float(np.abs(np.asarray(outputs[name]) - ref).max())
    lengths = [len(ce.tokenizer(d)["input_ids"]) for d in docs]
    return {
        "candidates": len(docs),
        "passage_tokens_mean": round(float(np.mean(lengths)), 1),
        "repeats": repeats,
        "rows": rows,
    }


def run(settings, device: str, quick: bool, only: str = "", smoke: bool = False) -> dict:
    """Embedding levers on the FAQ (10k synthetic passages on a GPU); reranking levers on 10 candidates.

    `smoke`: the tiny stand-ins, SMOKE_TEXTS passages, one batch size and budget, SMOKE_CANDIDATES pairs.
    """
    from benchmarks.models import random_06b
    from helpers.embedding import load_embedder
    from helpers.offline.standins import TINY_EMBEDDER_ID, TINY_RERANKER_ID
    from helpers.rerank import load_reranker

    gpu = device.startswith("cuda")
    faq, corpus_name = faq_passages(settings)
    texts = faq[:SMOKE_TEXTS] if smoke else synthetic(faq, 10_000) if gpu and not quick else faq
    embed_models = (
        {f"Qwen3-0.6B architecture ({RANDOM_LABEL})": random_06b("embedding", settings)}
        if gpu and not smoke
        else {f"tiny Qwen3 stand-in ({RANDOM_LABEL})": TINY_EMBEDDER_ID}
    )
    results: dict = {"corpus": corpus_name, "embed": {}, "rerank": {}}
    for label, model_id in embed_models.items():
        st = load_embedder(model_id, settings)
        batch_sizes = (512,) if only == "compile" else (128, 256, 512, 1024) if gpu else (16, 64)
        budgets = (16384, 65536) if gpu else (2048,)
        # One pass of 10k passages takes seconds on a GPU and varies little; CPU runs are noisier.
        repeats = 1 if gpu or quick or smoke else 2
        if smoke:
            batch_sizes, budgets = (4,), (1024,)
        results["embed"][label] = embed_levers(st, texts, device, batch_sizes, budgets, repeats, only)
        del st
    if only == "compile":
        return results
    by_length = sorted(faq, key=len, reverse=True)
    docs = by_length[: SMOKE_CANDIDATES if smoke else 10]
    rerank_model = random_06b("reranker", settings) if gpu and not smoke else TINY_RERANKER_ID
    ce = load_reranker(rerank_model, settings)
    results["rerank"][rerank_model] = rerank_levers(ce, docs, device, 1 if quick or smoke else 5)
    return results
