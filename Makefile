# edgefuse: `make demo` and `make test` are the two set-up commands (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
SHARED ?= ../shared/data
# CPU wheel of torch from local disk on our machines; any torch >= 2.2 works elsewhere.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo lint test bench-gate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# third-party dependencies: once per pyproject change
$(VENV)/.deps: pyproject.toml | $(BIN)/python
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q ".[all,dev]"
	touch $@

# the package itself, installed as a user would (not editable), so package data and the
# package-dir mapping are exercised by every test run
install: $(VENV)/.deps
	rm -rf build  # setuptools never prunes build/lib: a deleted module would ship again
	$(PIP) install -q --no-deps --force-reinstall .

demo: install
	$(BIN)/edgefuse info
	$(BIN)/edgefuse fuse -o out/demo --side-by-side
	@if [ -d "$(SHARED)/roadscene_train" ]; then \
		$(BIN)/edgefuse fuse "$(SHARED)/roadscene_train/vi/FLIR_00006.jpg" "$(SHARED)/roadscene_train/ir/FLIR_00006.jpg" \
			-o out/demo/real_FLIR_00006.png --side-by-side; \
	else echo "real pairs not found at $(SHARED): fused the synthetic set only"; fi
	@echo "demo outputs in out/demo/"

lint: $(VENV)/.deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install lint
	cd tests && ../$(BIN)/pytest -q -p no:cacheprovider

# the small real latency/drift gate CI runs after the tests (docs/bench.md)
bench-gate: install
	PATH="$(abspath $(BIN)):$$PATH" scripts/bench_gate.sh

clean:
	rm -rf out exports build dist *.egg-info
