# Quick start:  make run   (napari with the sample where a display exists, else a headless run)
#               make test  (install everything and run the whole test suite)
# Both are idempotent. Torch is pinned here, in the same pip command, not in pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PIN ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed; installing python3-venv"; \
	  apt-get install -y python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)" -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

run: install
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
	  $(BIN)/atomdefect view; \
	else \
	  echo "No display found: running the pipeline headless on the built-in sample."; \
	  $(BIN)/atomdefect demo --out results; \
	fi

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/python -m mypy

bench: install
	$(BIN)/python benchmarks/bench_lattice.py

clean:
	rm -rf $(VENV) results .pytest_cache
