# One-command set-up. `make demo` and `make test` create .venv and install everything first.
# Torch is installed on its own first so you can pick the build:
#   make install TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu128"
# A torch that is already in .venv is kept.

PYTHON      ?= python3
VENV        ?= .venv
TORCH_SPEC  ?= torch==2.13.0
BIN         := $(VENV)/bin
PY          := $(BIN)/python
STAMP       := $(VENV)/.installed
QUESTION    ?= How is data stored in milvus?
# Tests and notebook runs never download models (the offline kit is pinned), never call an LLM, and
# use their own Milvus Lite file, so an open JupyterLab kernel holding data/milvus_rag.db is no obstacle.
TEST_ENV    := RAG_MODELS=offline HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OPENAI_API_KEY= OPENAI_BASE_URL= \
               LLM_MODEL=gpt-4o MILVUS_URI= RAG_LITE_FILE=$(CURDIR)/data/cache/test.db MILVUS_COLLECTION=milvus_faq
NBVAL       := --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg

.PHONY: install demo test lint notebooks lab clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): requirements.txt pyproject.toml | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m helpers ingest
	$(PY) -m helpers ask "$(QUESTION)"

test: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest tests notebooks $(NBVAL)

notebooks: $(STAMP)
	$(TEST_ENV) $(PY) notebooks/execute_notebooks.py

lint: $(STAMP)
	$(BIN)/ruff check helpers tests notebooks

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) data/cache data/*.db .pytest_cache
