PY ?= python3
PYTEST_ARGS ?=

.PHONY: install test test-all demo bench lint-imports clean

# torch first, pinned to the CPU wheel: a bare `torch` requirement would pull the multi-GB CUDA build.
install:
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"

# The suite CI runs: everything except tests marked slow/gpu/trt (those skip with their reason anyway).
test:
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all:
	$(PY) -m pytest $(PYTEST_ARGS)

# The design-card command on the default model, CPU + ONNX Runtime.
demo:
	resvit-export build --profile 224-1792 -o out/demo --force

bench:
	$(PY) benchmarks/bench_latency.py
	$(PY) benchmarks/bench_build.py

clean:
	rm -rf out build *.egg-info .pytest_cache
