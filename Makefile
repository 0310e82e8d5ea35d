# The two commands of the README:
#   make run    fresh machine → .venv, pinned installs, LaTeX if missing, default pipeline → PDF
#   make test   the same environment plus the test tools, then ruff and pytest
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
CORES  ?= all
export PATH := $(BIN):$(PATH)

.PHONY: run test install latex lint bench smoke clean

run: $(VENV)/.installed latex
	snakemake --cores $(CORES)

test: $(VENV)/.installed-test latex
	ruff check .
	pytest

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

bench: $(VENV)/.installed
	python benchmarks/bench_measure.py
	bash benchmarks/bench_pipeline.sh

clean:
	rm -rf results .snakemake
