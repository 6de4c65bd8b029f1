"""Benchmarks: this project's fast paths against the tutorial's code, same process, same inputs.

Run `python -m benchmarks NAME [--quick] [--json]` with NAME in embed, rerank, milvus, ask.
Results go to benchmarks/results/NAME_DEVICE.json with the machine, versions and inputs.
"""
