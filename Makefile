# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench fuzz fuzz-nearmiss clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

CONSTRAINTS := constraints/dev.txt

# Every backend's framework plus the test tools, pinned by $(CONSTRAINTS) (a CPU-only
# torch). Reinstall whenever the dependencies or the pins change.
$(STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[all,test]'
	touch $(STAMP)

install: $(STAMP)

# A worker per core (pytest-xdist; WORKERS=0 runs in one process). With loadgroup each
# framework's marked tests share one worker, which imports that framework once
# (tests/framework_groups.py); the other tests go to whichever worker is free.
WORKERS ?= auto
PYTEST := $(BIN)/python -m pytest -q -n $(WORKERS) --dist loadgroup

demo: $(STAMP)
	$(BIN)/convcheck demo

test: $(STAMP)
	$(PYTEST)

# The suite without the framework tests (TensorFlow/Keras, PyTorch, JAX, OpenCV).
test-fast: $(STAMP)
	$(PYTEST) -m "not tensorflow and not torch and not jax and not opencv"

# The seeded soundness fuzzer on 10,000 cases (make test runs 400 of them).
fuzz: $(STAMP)
	FUZZ_CASES=10000 $(PYTEST) tests/test_fuzz.py

# The near-miss fuzzer (issue 20) on 2,000 cases, two processes, counts per kind and family
# (make test runs a slice of it: NEARMISS_CASES=N widens tests/test_fuzz_nearmiss.py).
fuzz-nearmiss: $(STAMP)
	$(BIN)/python -m tests.fuzz_nearmiss 0 2000 -j2

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
