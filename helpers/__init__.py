"""helpers: the small library behind the Qwen3 + Milvus RAG course notebooks.

One module per pipeline stage: config, data (download and chunk), models (which models run),
embedding, rerank, store (Milvus), generate (OpenAI-compatible LLM), pipeline (all stages), and
`python -m helpers` for the command line. Heavy libraries are imported inside the functions that need them.
"""

__version__ = "0.1.0"
