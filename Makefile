# `make run` and `make test` create .venv on first use. TORCH_SPEC is what pip installs for torch
# first; the default is the CPU build these machines provide. Elsewhere, e.g.:
#   make test TORCH_SPEC='torch>=2.3'
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_OUT ?= data/progeval-demo

.PHONY: run dataset test test-all bench lint clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

# The main job on its built-in default: GF vs stacked LSTM encoder-decoders on generated programs.
run: $(VENV)/.installed
	$(PY) -m gfseq.run --task progeval --nest 3

# The dataset on its own: generate, show and re-verify a curriculum dataset.
dataset: $(VENV)/.installed
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
	$(PY) benchmarks/bench_train.py --repeats 5
	$(PY) benchmarks/bench_enwik8.py --repeats 3

lint: $(VENV)/.installed
	$(PY) -m ruff check progeval gfseq tests benchmarks
	$(PY) -m ruff format --check progeval gfseq tests benchmarks

clean:
	rm -rf $(VENV) data runs
