# One-command set-up. `make demo` and `make test` create .venv and install everything first.
# Python 3.11 or newer is checked before anything is created or downloaded; pick one with
#   PYTHON=python3.12 make demo
# Torch is installed on its own first so you can pick the build:
#   make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
# A torch that is already in .venv is kept. Then the exact versions tested together
# (requirements.lock, refreshed by `make lock`); REQUIREMENTS=requirements.txt takes the minimums instead.

PYTHON      ?= python3
PY_MIN      := 3.11
VENV        ?= .venv
TORCH_SPEC  ?= torch==2.13.0
REQUIREMENTS ?= requirements.lock
UV_VERSION  ?= 0.13.9
LOCK_ARGS   ?=
LAB_ARGS    ?=
BIN         := $(VENV)/bin
# Infinity, the model server the remote-backend tests start, lives in a virtual environment of its own.
INFINITY_VENV ?= .venv-infinity
INFINITY      := $(CURDIR)/$(INFINITY_VENV)/bin/infinity_emb
INFINITY_STAMP := $(INFINITY_VENV)/.installed
PY          := $(BIN)/python
STAMP       := $(VENV)/.installed
QUESTION    ?= How is data stored in milvus?
# Tests and notebook runs never download models (the offline kit is pinned), never call an LLM, and
# use their own Milvus Lite file, so an open JupyterLab kernel holding data/milvus_rag.db is no obstacle.
TEST_LITE   := $(CURDIR)/data/cache/test.db
TEST_ENV    := RAG_MODELS=offline HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OPENAI_API_KEY= OPENAI_BASE_URL= \
               LLM_MODEL=gpt-4o MILVUS_URI= RAG_LITE_FILE=$(TEST_LITE) MILVUS_COLLECTION=milvus_faq \
               RAG_EMBEDDING_URL= RAG_RERANK_URL= RAG_MODEL_API_KEY= RAG_INFINITY=$(INFINITY)
# Test workers (pytest-xdist): two keep a 2-core machine busy while one waits on a server or a kernel.
# --dist loadfile keeps each file (a notebook's cells, a module's fixtures) on one worker, in order.
TEST_WORKERS ?= 2
# CPU threads per worker (torch, numpy) and the kernels and servers it starts: two workers of two threads
# on two cores would fight over them. On more cores, raise it: TEST_THREADS=4 make test.
TEST_THREADS ?= 1
NBVAL       := --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg

# A class without the venue's internet. `make wheelhouse` puts every wheel the lock needs, torch (TORCH_SPEC)
# included, into WHEEL_DIR; `make install WHEELHOUSE=WHEEL_DIR` then installs from that folder alone (no index).
# WHEEL_PLATFORM=macos-arm64, windows-x86_64 or linux-x86_64 downloads another platform's wheels (Python
# WHEEL_PYTHON, a full version: some locked wheels need 3.11.5+) into WHEEL_DIR/WHEEL_PLATFORM; WHEEL_LIST=1
# only lists what that would download.
WHEELHOUSE     ?=
WHEEL_DIR      ?= wheelhouse
WHEEL_PLATFORM ?=
WHEEL_PYTHON   ?= 3.11.9
WHEEL_LIST     ?=
PIP_SOURCE     := $(if $(WHEELHOUSE),--no-index --find-links $(abspath $(WHEELHOUSE)))
# Each platform's resolution (uv evaluates the lock's markers for it; pip's --platform would use this
# machine's) and the wheel tags pip then downloads. TORCH_INDEX adds an index for torch's own builds, e.g.
# TORCH_INDEX=https://download.pytorch.org/whl/cpu for CPU-only Linux and Windows wheels. macOS 14 or newer:
# the lock's faiss-cpu (Milvus Lite's index library) has no Apple-silicon wheel for older macOS.
TORCH_INDEX    ?=
TORCH_INDEX_ARGS := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX) --index-strategy unsafe-best-match)
UV_PLATFORM_macos-arm64     := aarch64-apple-darwin
UV_PLATFORM_windows-x86_64  := x86_64-pc-windows-msvc
UV_PLATFORM_linux-x86_64    := x86_64-manylinux_2_28
PIP_PLATFORM_macos-arm64    := --platform macosx_14_0_arm64
PIP_PLATFORM_windows-x86_64 := --platform win_amd64
PIP_PLATFORM_linux-x86_64   := $(foreach v,17 24 27 28,--platform manylinux_2_$(v)_x86_64) --platform manylinux2014_x86_64
# The two Qwen3 models at their pinned commits (helpers/config.py) into DEST/hub, a hub cache to copy.
DEST           ?=

.PHONY: install demo test lint notebooks reading-times lab lock clean check-python infinity browser wheelhouse models
.DEFAULT_GOAL := install

# transformers 5 and pandas 3 need Python 3.11+. Checks the Python of an existing $(VENV), else $(PYTHON),
# and stops with one line saying what to do; runs before anything is created or downloaded.
check-python:
	@if [ -e "$(PY)" ]; then py="$(PY)"; else py="$(PYTHON)"; fi; \
	v=$$("$$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null); \
	major=$${v%%.*}; rest=$${v#*.}; minor=$${rest%%.*}; \
	if [ -z "$$v" ]; then \
	  echo "error: cannot run $$py; install Python $(PY_MIN) or newer and choose it with PYTHON=, e.g. PYTHON=python3.12 make demo" >&2; \
	  exit 1; \
	elif [ "$$major" -lt 3 ] || { [ "$$major" -eq 3 ] && [ "$$minor" -lt $(word 2,$(subst ., ,$(PY_MIN))) ]; }; then \
	  if [ -e "$(PY)" ]; then \
	    echo "error: $(VENV) was made by Python $$v, older than $(PY_MIN): run 'make clean', then choose a newer Python, e.g. PYTHON=python3.12 make demo" >&2; \
	  else \
	    where=$$(command -v "$(PYTHON)"); [ "$$where" = "$(PYTHON)" ] && where= || where=" ($$where)"; \
	    echo "error: $(PYTHON)$$where is Python $$v, but this course needs $(PY_MIN) or newer: choose another with PYTHON=, e.g. PYTHON=python3.12 make demo" >&2; \
	  fi; \
	  exit 1; \
	fi

$(PY): | check-python
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(PIP_SOURCE) --upgrade pip

$(STAMP): requirements.txt requirements.lock pyproject.toml | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet $(PIP_SOURCE) $(TORCH_SPEC)
	$(PY) -m pip install --quiet $(PIP_SOURCE) -r $(REQUIREMENTS)
	$(PY) -m pip install --quiet $(PIP_SOURCE) --no-deps -e .
	@# ranx's metrics are numba functions, compiled on first use (about 35 s on two cores) and cached in the
	@# venv per type, and a passage id's length is part of the type: compile once here, for the course's ids,
	@# rather than in each process that evaluates first (notebook 06, `eval`, the tests).
	$(PY) -c "from helpers.chunking import stable_id as i; from helpers.evaluate import compute_metrics as m; \
	    m({'q': {i('a', 'b'): 1}}, {'q': {i('a', 'b'): 1.0, i('a', 'c'): 0.5}})"
	touch $(STAMP)

install: $(STAMP)

# The model server for the remote-backend tests (see requirements-infinity.lock); about 1.4 GB.
$(INFINITY_STAMP): requirements-infinity.lock | check-python
	$(PYTHON) -m venv $(INFINITY_VENV)
	$(INFINITY_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(INFINITY_VENV)/bin/python -c "import torch" 2>/dev/null || $(INFINITY_VENV)/bin/python -m pip install --quiet $(TORCH_SPEC)
	$(INFINITY_VENV)/bin/python -m pip install --quiet -r requirements-infinity.lock
	touch $(INFINITY_STAMP)

infinity: $(INFINITY_STAMP)

# Chromium for the explorer's browser test (tests/test_explore_browser.py), which Playwright drives: Debian's
# `chromium` package (Playwright's own browser download is not used). Installed with apt-get when run as root
# on Debian or Ubuntu; elsewhere install Chromium yourself or set CHROMIUM=/path/to/chromium. Without one, the
# browser test is skipped and says why.
browser:
	@if [ -n "$$CHROMIUM" ] || command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
	    || command -v google-chrome >/dev/null; then \
	  echo "browser: $${CHROMIUM:-$$(command -v chromium chromium-browser google-chrome | head -n 1)}"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
	    >/dev/null && echo "browser: installed $$(chromium --version 2>/dev/null)"; } \
	  || echo "browser: apt-get could not install chromium (the browser test is skipped and says why)" >&2; \
	else \
	  echo "browser: no Chromium, and apt-get needs root: install chromium or set CHROMIUM=/path/to/chromium (the browser test is skipped meanwhile)" >&2; \
	fi

# Re-resolve requirements.lock from requirements.txt with uv: pins that still fit are kept, and
# LOCK_ARGS=--upgrade takes the newest allowed versions. One lock for Linux, macOS and Windows, Python
# 3.11+. torch and its CUDA wheels stay out of it: TORCH_SPEC installs torch first.
lock: | $(PY)
	$(PY) -m pip install --quiet "uv==$(UV_VERSION)"
	echo torch > $(VENV)/lock-excludes.txt
	MACOSX_DEPLOYMENT_TARGET=14.0 $(BIN)/uv pip compile --quiet requirements.txt --universal --python-version $(PY_MIN) \
	    --excludes $(VENV)/lock-excludes.txt --custom-compile-command "make lock" $(LOCK_ARGS) -o requirements.lock

# This platform: `pip wheel` (sdists built into wheels, so the install needs no compiler or index), plus pip
# and setuptools for the install itself. Another platform: `pip download --only-binary` for its tags. One
# resolution with TORCH_SPEC, so that nothing pulls in another torch; for the CPU build from pytorch.org use
# TORCH_SPEC="torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cpu" (the +cpu build ranks first).
wheelhouse: | $(PY)
ifeq ($(WHEEL_PLATFORM),)
	$(PY) -m pip wheel --quiet --wheel-dir $(WHEEL_DIR) pip "setuptools>=68" $(TORCH_SPEC) -r $(REQUIREMENTS)
	@echo "$(WHEEL_DIR): $$(ls $(WHEEL_DIR) | wc -l) wheels, $$(du -sh $(WHEEL_DIR) | cut -f1); install with: make install WHEELHOUSE=$(WHEEL_DIR)"
else
	@test -n "$(UV_PLATFORM_$(WHEEL_PLATFORM))" || { echo "error: WHEEL_PLATFORM=$(WHEEL_PLATFORM): use macos-arm64, windows-x86_64 or linux-x86_64" >&2; exit 2; }
	$(PY) -m pip install --quiet "uv==$(UV_VERSION)"
	@mkdir -p $(WHEEL_DIR)
	{ cat $(REQUIREMENTS); echo "$(firstword $(TORCH_SPEC))"; echo pip; echo "setuptools>=68"; } > $(WHEEL_DIR)/.wanted.txt
	MACOSX_DEPLOYMENT_TARGET=14.0 $(BIN)/uv pip compile --quiet --no-header --no-annotate --python-platform $(UV_PLATFORM_$(WHEEL_PLATFORM)) \
	    --python-version $(WHEEL_PYTHON) $(TORCH_INDEX_ARGS) $(WHEEL_DIR)/.wanted.txt -o $(WHEEL_DIR)/$(WHEEL_PLATFORM).txt
ifeq ($(WHEEL_LIST),)
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: $(PIP_PLATFORM_$(WHEEL_PLATFORM)) \
	    --python-version $(WHEEL_PYTHON) --implementation cp $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) \
	    --dest $(WHEEL_DIR)/$(WHEEL_PLATFORM) -r $(WHEEL_DIR)/$(WHEEL_PLATFORM).txt
	@echo "$(WHEEL_DIR)/$(WHEEL_PLATFORM): $$(ls $(WHEEL_DIR)/$(WHEEL_PLATFORM) | wc -l) wheels, $$(du -sh $(WHEEL_DIR)/$(WHEEL_PLATFORM) | cut -f1)"
else
	@grep -v '^#' $(WHEEL_DIR)/$(WHEEL_PLATFORM).txt
	@echo "$(WHEEL_PLATFORM): $$(grep -c '==' $(WHEEL_DIR)/$(WHEEL_PLATFORM).txt) packages to download (listed only: WHEEL_LIST=1)"
endif
endif

models: $(STAMP)
	@test -n "$(DEST)" || { echo "error: name the folder: make models DEST=/path/to/usb-stick/qwen3" >&2; exit 2; }
	HF_HUB_OFFLINE= $(PY) -m helpers.offline.hub "$(DEST)"

demo: $(STAMP)
	$(PY) -m helpers ingest
	$(PY) -m helpers ask "$(QUESTION)"

# Each notebook builds its own Milvus Lite file on first use, as in a fresh clone: start from none, so
# `make test` and `make notebooks` see what CI and a new learner see.
test: $(STAMP) $(INFINITY_STAMP) browser
	rm -rf $(dir $(TEST_LITE))notebooks
	$(TEST_ENV) OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest tests notebooks $(NBVAL) -n $(TEST_WORKERS) --dist loadfile

notebooks: $(STAMP)
	rm -rf $(dir $(TEST_LITE))notebooks
	$(TEST_ENV) $(PY) notebooks/execute_notebooks.py

# Core, exercise and deep-dive minutes of every notebook (prose at 180 words/min, code at 15 lines/min), against the
# README's agenda; fails when a core path is over its time or all of them over 110 minutes.
reading-times: $(STAMP)
	$(PY) notebooks/reading_times.py

lint: $(STAMP)
	$(BIN)/ruff check helpers tests notebooks

# On this machine only (127.0.0.1); --allow-root when run as root (containers, cloud VMs), which
# Jupyter otherwise refuses. LAB_ARGS adds options, e.g. LAB_ARGS="--port=8899 --no-browser".
lab: $(STAMP)
	$(BIN)/jupyter lab --ip=127.0.0.1 $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS) notebooks/

clean:
	rm -rf $(VENV) $(INFINITY_VENV) data/cache data/notebooks data/*.db .pytest_cache
