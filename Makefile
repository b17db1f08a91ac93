# Quickstart: `make demo` (set up, then run the main job) and `make test` (set up, then test).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test bench schema clean

# (Re)install whenever the package metadata changes; pip skips what is already there.
$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The main job on the embedded default data: check, show, then train into runs/demo.
demo: $(STAMP)
	$(BIN)/cnnbp check digits
	$(BIN)/cnnbp show digits
	rm -rf runs/demo
	$(BIN)/cnnbp train digits --data digits -o runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/check_speed.py
	$(BIN)/python bench/build_time.py
	$(BIN)/python bench/train_speed.py

schema: $(STAMP)
	$(BIN)/python -c 'from builder.schema import write; write()'

clean:
	rm -rf $(VENV) runs build *.egg-info .pytest_cache .hypothesis
