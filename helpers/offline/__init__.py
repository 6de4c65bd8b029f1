"""The offline kit, not RAG code: can the hub supply a model (`hub`), Qwen3's exact tokenizer (`tokenizer`)
and random-weight Qwen3 stand-ins (`standins`), loaded through the code that loads the real models.
"""
