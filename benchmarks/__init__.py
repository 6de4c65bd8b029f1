"""Benchmarks: this project's fast paths against the tutorial's code, same process, same inputs.

Run `python -m benchmarks NAME [--quick | --smoke] [--json]` with NAME in embed, rerank, milvus, ask,
precision, levers, notebooks, serving,
train_reranker, all (or plot). Results go to benchmarks/results/NAME_DEVICE.json
with the machine, versions and inputs; `--smoke` (a handful of items, tiny models) saves nothing.
"""

import sys
from pathlib import Path

# The tests' support modules (the model card's reference reranker, the hub replicas' shapes, the model server,
# the notebook runner) serve the benchmarks too: their folder goes on the import path once, here, before any
# benchmark module imports them.
TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
