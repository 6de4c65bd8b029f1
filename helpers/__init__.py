"""helpers: what the course notebooks teach, one module per stage, for later notebooks and the CLI to import.

Course modules, in the notebooks' order: `config` and `setup` (00: settings, which models run, a notebook's
first cell), `chunking` (01), `embedding` (02), `store` (03: Milvus), `rerank` (04), `generate` (05),
`evaluate` (06), and `pipeline`, which composes them. Beside them: `cli` and `cli_eval` (the command line,
`python -m helpers`), `remote` (the serving client for models behind HTTP) and `offline` (the offline kit:
hub checks, Qwen3's tokenizer and random-weight stand-ins, not RAG code).
"""

__version__ = "0.2.0"
