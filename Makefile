# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench fuzz clean

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

# The seeded soundness fuzzer on 10,000 cases (make test runs 600 of them).
fuzz: $(STAMP)
	FUZZ_CASES=10000 $(BIN)/python -m pytest -q tests/test_fuzz.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
