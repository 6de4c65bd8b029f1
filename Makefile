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
# The test suite never downloads models: the offline kit is pinned.
TEST_ENV    := RAG_MODELS=offline HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: install demo test unit lint notebooks lab clean

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
	$(TEST_ENV) $(PY) -m pytest

lint: $(STAMP)
	$(BIN)/ruff check helpers tests

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) data/cache data/*.db .pytest_cache
