"""One figure from the saved results: speed-up and memory ratio of each batched call over the tutorial's code.

Embedding: the library's batched `encode_document` over the tutorial's one-text-per-call loop. Reranking:
`CrossEncoder.predict` (helpers' Reranker) over the model card's full-vocabulary reference. CPU and GPU.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import RESULTS


def rows(folder: Path = RESULTS) -> list[dict]:
    """(benchmark, device, model, input, speedup, memory_ratio) for every comparison saved in `folder`."""
    out = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        if data.get("benchmark") not in ("embed", "rerank") or data.get("quick"):
            continue
        device = "GPU" if data["device"].startswith("cuda") else "CPU"
        for r in data.get("all", []):
            model = "0.6B" if "0.6B" in r["model"] else "small"
            out.append(
                {
                    "bench": data["benchmark"],
                    "device": device,
                    "model": model,
                    "input": r["input"],
                    "speedup": r["speedup"],
                    "memory_ratio": r["memory_ratio"],
                }
            )
    return out


def precision_rows(folder: Path = RESULTS) -> list[dict]:
    """(kind, model, dtype, speedup over fp32) from the full CPU precision run, if saved in `folder`."""
    path = folder / "precision_cpu.json"
    if not path.exists():
        return []
    result = json.loads(path.read_text())["result"]
    out = []
    for kind in ("embed", "rerank"):
        for label, entry in result[kind].items():
            model = "0.6B" if "0.6B" in label else "MiniLM" if "MiniLM" in label else "tiny"
            for dtype, row in entry.get("variants", {}).items():
                if "speedup" in row and model != "tiny":
                    out.append({"kind": kind, "model": model, "dtype": dtype, "speedup": row["speedup"]})
    return out


def main(folder: Path = RESULTS, out: Path | None = None) -> Path:
    """Draw the saved results of `folder` into `out` (default: FOLDER/summary.png); return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = folder / "summary.png" if out is None else out
    data = [r for r in rows(folder) if r["model"] == "0.6B"]
    if not data:
        raise SystemExit("No saved embed/rerank results: run `python -m benchmarks embed` first.")
    labels = [f"{r['bench']} {r['input'].replace('synthetic_', '')}\n{r['device']}" for r in data]
    variants = precision_rows(folder)
    fig, axes = plt.subplots(1, 3 if variants else 2, figsize=(18 if variants else 12, 4.8))
    ax1, ax2 = axes[0], axes[1]
    ax1.bar(labels, [r["speedup"] for r in data], color="tab:blue")
    ax1.axhline(1, color="black", linewidth=0.8)
    ax1.set(title="Batched call vs tutorial code: throughput ratio", ylabel="speed-up (x, higher is better)")
    ax2.bar(labels, [r["memory_ratio"] or 0 for r in data], color="tab:orange")
    ax2.axhline(1, color="black", linewidth=0.8)
    ax2.set_yscale("log")
    ax2.set(title="Peak memory growth ratio (log scale)", ylabel="batched / tutorial (lower is better)")
    if variants:
        ax3 = axes[2]
        names = [f"{v['kind']} {v['model']}\n{v['dtype']}" for v in variants]
        colors = ["tab:green" if v["dtype"] == "int8" else "tab:purple" for v in variants]
        ax3.bar(names, [v["speedup"] for v in variants], color=colors)
        ax3.axhline(1, color="black", linewidth=0.8)
        ax3.set(title="CPU precision variants (this CPU: no avx512_bf16/AMX)", ylabel="speed-up over fp32")
    for ax in axes:
        ax.tick_params(axis="x", labelsize=8, labelrotation=30)
    fig.suptitle(
        "Qwen3-0.6B architecture, random weights (timing only)"
        + ("; right: also all-MiniLM-L6-v2 (trained)" if variants else "")
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(f"saved {main()}")
