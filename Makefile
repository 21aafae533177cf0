# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= runs/demo

.PHONY: demo test test-all install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, so pip takes the build named by TORCH_SPEC instead of resolving one for transformers.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# A few ARC-AGI-1 evaluation tasks attempted by the planner with its offline default, program search
# (no weights): the search solves three of these four and not 00576224. --resume: a second `make demo`
# continues.
DEMO_TASKS ?= 00576224,66e6c45b,68b67ca3,e633a9e5
demo: install
	$(BIN)/hybrid-arc plan --data arc-agi-1:evaluation --tasks $(DEMO_TASKS) --out $(DEMO_OUT) --resume

test: install-dev
	$(BIN)/python -m pytest -m "not slow" -q

test-all: install-dev
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
