# The commands of the README:
#   make run       fresh machine → .venv, pinned installs, LaTeX if missing, default pipeline → PDF
#   make test      the same environment plus the test tools; ruff and the everyday tier of pytest
#   make test-all  make test, then the slow tier (what CI runs: .ci/run)
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
CORES  ?= all
# pytest-xdist's workers; benchmarks/README.md has the wall times with 1 and 2 on 2 cores.
WORKERS ?= 2
PYTEST  := pytest -n $(WORKERS) --dist loadscope
export PATH := $(BIN):$(PATH)

.PHONY: run test test-all install latex lint bench smoke evidence clean

run: $(VENV)/.installed latex
	snakemake --cores $(CORES)

test: $(VENV)/.installed-test latex
	ruff check .
	$(PYTEST) -m "not slow"

# The slow tier (pytest marker `slow`): every smoke preset with its claims, the GLUE workflow,
# the full presets' plans, the SLURM cluster and the other end-to-end runs.
test-all: test
	$(PYTEST) -m slow

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

latex:
	@bash scripts/ensure_latex.sh

lint: $(VENV)/.installed-test
	ruff check .
	snakemake --lint

# Every paper preset at smoke scale, each to results/<paper>-smoke/report.pdf (scripts/smoke.sh).
smoke: $(VENV)/.installed latex
	bash scripts/smoke.sh

# Every paper's MNIST preset on real MNIST, then docs/evidence.md (scripts/evidence.sh):
# MNIST_ROOT=<root with MNIST/raw/>, or MNIST_RAW=<folder of the t10k files> (no train set).
evidence: $(VENV)/.installed latex
	MNIST_ROOT="$(MNIST_ROOT)" MNIST_RAW="$(MNIST_RAW)" bash scripts/evidence.sh

bench: $(VENV)/.installed
	python benchmarks/bench_measure.py
	python benchmarks/bench_train_floor.py
	bash benchmarks/bench_pipeline.sh

clean:
	rm -rf results .snakemake
