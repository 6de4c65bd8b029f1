"""Shared measuring tools: machine description, peak-memory probes, percentiles, result files."""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from benchmarks import TESTS  # noqa: F401  (tests/ is on the import path: the benchmarks use its support code)

RESULTS = Path(__file__).resolve().parent / "results"
RANDOM_LABEL = "random weights, timing only"
# Dense bf16 tensor-core peak of the H100 SXM (989 TFLOP/s without sparsity), for MFU.
GPU_PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or platform's guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_flags() -> list[str]:
    """Which of the instruction sets that matter for fp32 / bf16 / int8 kernels this CPU has."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    have = set(next((ln for ln in text.splitlines() if ln.startswith("flags")), "").split())
    return [f for f in CPU_FLAGS if f in have]


def native_bf16() -> bool:
    """True when the CPU has bf16 arithmetic (avx512_bf16 or AMX); without it bf16 is emulated."""
    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_flags()))


def machine(device: str) -> dict:
    """Where a benchmark ran: CPU, cores, memory, GPU, library versions."""
    import torch

    info = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "versions": {
            p: _version(p)
            for p in ("torch", "transformers", "sentence-transformers", "pymilvus", "milvus-lite")
        },
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _trim() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def available_memory(device: str) -> int:
    """Bytes a new allocation can take now: free memory of the GPU, or MemAvailable on a CPU."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info()[0])
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise OSError("/proc/meminfo has no MemAvailable line")


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Peak:
    """Peak memory growth over a block: CPU RSS (sampled every millisecond) or CUDA allocations."""

    device: str
    growth: int = 0
    _samples: list[int] = field(default_factory=list)

    @contextmanager
    def measure(self):
        """Record the peak above the level at entry."""
        import gc

        import torch

        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            yield self
            torch.cuda.synchronize()
            self.growth = torch.cuda.max_memory_allocated() - base
            return
        _trim()  # hand freed heap pages back to the OS, so an earlier run's memory is not reused for free
        base = rss_bytes()
        peak = [base]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss_bytes())
                time.sleep(0.001)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            self.growth = max(0, max(peak[0], rss_bytes()) - base)


def sync(device: str) -> None:
    """Wait for queued GPU work so timings are honest."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def best_of(fn, repeats: int, device: str) -> tuple[float, object]:
    """Run `fn` `repeats` times; return the fastest wall time in seconds and the last output."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - t)
    return best, out


def percentiles(ms: list[float]) -> dict[str, float]:
    """p50, p95, p99 of a list of milliseconds."""
    arr = np.asarray(ms)
    return {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in (50, 95, 99)}


def save(name: str, device: str, payload: dict) -> Path:
    """Write benchmarks/results/NAME_DEVICE.json and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    kind = "gpu" if device.startswith("cuda") else "cpu"
    path = RESULTS / f"{name}_{kind}.json"
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    return path
