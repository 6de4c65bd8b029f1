"""Benchmarks: this project's fast paths against the tutorial's code, same process, same inputs.

Run `python -m benchmarks NAME [--quick | --smoke] [--json]` with NAME in embed, rerank, milvus, ask,
precision, levers, notebooks, serving, all (or plot). Results go to benchmarks/results/NAME_DEVICE.json
with the machine, versions and inputs; `--smoke` (a handful of items, tiny models) saves nothing.
"""
