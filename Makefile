# Set-up and everyday commands. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-fast demo lint bench clean

install: $(STAMP)

# Re-runs only when the packaging files change; the constraints pin the torch build
# (DEVELOPERS.md) while setup.cfg keeps ranges for other machines. The optional extras
# (dense CRF, TensorBoard, export: onnx and onnxruntime) are installed too, so their tests run
# here and in CI.
$(STAMP): setup.cfg pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,crf,tensorboard,export]'
	touch $(STAMP)

# Two test processes, one per core, each test file in one of them (its fixtures and order kept).
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The quick loop while editing: everything but the slow and the torchrun tests (`make test`
# before committing runs them all).
test-fast: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow and not distributed"

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" sh scripts/demo.sh

lint: install
	$(BIN)/ruff check segcli recipes tests scripts
	$(BIN)/ruff format --check segcli recipes tests scripts

bench: install
	$(BIN)/python scripts/bench_metrics.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
