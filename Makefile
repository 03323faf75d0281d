# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever pyproject.toml changes (dependencies).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,plot]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/convcheck demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The suite without the TensorFlow/Keras tests (seconds instead of a minute).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not tensorflow"

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
