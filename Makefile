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

# The main job on the embedded default data: check, show, train into runs/demo, then export
# a validated ONNX bundle (bundles/demo) and a Triton model repository (model_repository/),
# and print the one command that serves it.
demo: $(STAMP)
	$(BIN)/cnnbp check digits
	$(BIN)/cnnbp show digits
	rm -rf runs/demo bundles/demo model_repository/demo
	$(BIN)/cnnbp train digits --data digits -o runs/demo
	$(BIN)/cnnbp export runs/demo -o bundles/demo --triton model_repository
	$(BIN)/cnnbp validate bundles/demo
	@echo "Serve it (Open Inference Protocol: HTTP on 127.0.0.1:8000 with a page at /, gRPC on :8001):  $(BIN)/cnnbp serve bundles/demo"

# Lint first (ruff, configured in pyproject.toml). The report tests open pages in a real headless
# browser (Debian's chromium) and the distributed search test runs a real PostgreSQL server: both
# are installed when missing. The tests run on every core (pytest-xdist), a file's tests on one
# worker so that module fixtures are made once.
test: $(STAMP)
	$(BIN)/ruff check .
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq postgresql)
	$(BIN)/python -m pytest -n auto --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,bench]"
	$(BIN)/python bench/check_speed.py
	$(BIN)/python bench/build_time.py
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/pixels_latency.py --rounds 20 --calls 10
	$(BIN)/python bench/export_vgg16.py --baseline
	$(BIN)/python bench/serve_speed.py

schema: $(STAMP)
	$(BIN)/python -c 'from cnnbp.builder.schema import write; write()'

clean:
	rm -rf $(VENV) runs build *.egg-info .pytest_cache .hypothesis
