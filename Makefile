# edgefuse: `make demo` and `make test` are the two set-up commands (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
SHARED ?= ../shared/data
# CPU wheel of torch from local disk on our machines; any torch >= 2.2 works elsewhere.
TORCH_SPEC ?= torch==2.13.0
# The heavy tier: tests that need a backend SDK (or take long). `make test` leaves them out and installs
# only what the rest needs; `make test-backends` installs every extra and runs the whole suite (so a test
# that skips without an SDK runs there); CI (.ci/run) runs both.
HEAVY := slow or gpu or onnxruntime or openvino or tflite or coreml or tensorrt or teacher
TEST_EXTRAS := onnx,video,dev
PYTEST := cd tests && ../$(BIN)/pytest -q -p no:cacheprovider

.PHONY: install install-core install-test demo lint test test-backends test-all bench-gate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# the demo's dependencies only: the core (torch, numpy, scipy, pillow, safetensors, typer, rich)
$(VENV)/.deps-core: pyproject.toml | $(BIN)/python
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q .
	touch $@

# the fast tier and lint: the core + ONNX (the reference export) + OpenCV + dev tools
$(VENV)/.deps-test: pyproject.toml | $(BIN)/python
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q ".[$(TEST_EXTRAS)]"
	touch $@ $(VENV)/.deps-core

# everything: every backend extra + dev tools (once per pyproject change)
$(VENV)/.deps: pyproject.toml | $(BIN)/python
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q ".[all,dev]"
	touch $@ $(VENV)/.deps-test $(VENV)/.deps-core

# the package itself, installed as a user would (not editable), so package data and the
# package-dir mapping are exercised by every test run
install: $(VENV)/.deps
	rm -rf build  # setuptools never prunes build/lib: a deleted module would ship again
	$(PIP) install -q --no-deps --force-reinstall .

install-core: $(VENV)/.deps-core
	rm -rf build
	$(PIP) install -q --no-deps --force-reinstall .

install-test: $(VENV)/.deps-test
	rm -rf build
	$(PIP) install -q --no-deps --force-reinstall .

demo: install-core
	$(BIN)/edgefuse info
	$(BIN)/edgefuse fuse -o out/demo --side-by-side --overwrite
	@if [ -d "$(SHARED)/roadscene_train" ]; then \
		$(BIN)/edgefuse fuse "$(SHARED)/roadscene_train/vi/FLIR_00006.jpg" "$(SHARED)/roadscene_train/ir/FLIR_00006.jpg" \
			-o out/demo/real_FLIR_00006.png --side-by-side --overwrite; \
	else echo "real pairs not found at $(SHARED): fused the synthetic set only (docs/data.md: getting real pairs)"; fi
	@echo "demo outputs in out/demo/"

lint: $(VENV)/.deps-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# lint + the fast tier (measured on the 2-core VM: 1.5 min from a fresh clone, ~30 s after; 2 min when busy)
test: install-test lint
	$(PYTEST) -m "not ($(HEAVY))"

# every extra installed: mypy against the SDKs' own types, then the whole suite (the heavy tier: backend
# round trips, exports, benchmarks, the teacher, multi-process runs; and the fast tier again, now with
# the SDKs its backend-dependent checks skip without)
test-backends: install
	$(BIN)/mypy
	$(PYTEST)

test-all: lint test-backends

# the small real latency/drift gate CI runs after the tests (docs/bench.md)
bench-gate: install
	PATH="$(abspath $(BIN)):$$PATH" scripts/bench_gate.sh

clean:
	rm -rf out exports build dist *.egg-info
