# `make run` and `make test` create .venv on first use. TORCH_SPEC is what pip installs for torch
# first; the default is the CPU build these machines provide. Elsewhere, e.g.:
#   make test TORCH_SPEC='torch>=2.3'
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_OUT ?= data/progeval-demo

.PHONY: run test test-all bench lint clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

# Until the main training job exists, the main job generates a curriculum dataset and shows it.
run: $(VENV)/.installed
	$(PY) -m progeval generate --length 6 --nest 3 --curriculum mix --out $(RUN_OUT) --overwrite
	$(PY) -m progeval show $(RUN_OUT) -n 3
	$(PY) -m progeval verify $(RUN_OUT) --quiet

test: $(VENV)/.installed
	$(PY) -m pytest -q

test-all: $(VENV)/.installed
	$(PY) -m pytest -q -m ""

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_progeval.py
	$(PY) -m gfseq.bench --repeats 9 --out benchmarks/gfseq_layers.md

lint: $(VENV)/.installed
	$(PY) -m ruff check progeval gfseq tests benchmarks
	$(PY) -m ruff format --check progeval gfseq tests benchmarks

clean:
	rm -rf $(VENV) data
