PY ?= python3
PYTEST_ARGS ?=
LOCK := constraints.txt
# timm is a test-only reference for the checkpoint converters. It needs torchvision, which has no CPU build
# to pin here, so it is installed without dependencies (the tests stand in a torchvision module).
TIMM_NO_DEPS = $(PY) -m pip install -q --no-deps -c $(LOCK) timm

.PHONY: install conformance-wheels test test-random test-all test-latest lock demo bench clean

# torch first, pinned to the CPU wheel: a bare `torch` requirement would pull the multi-GB CUDA build.
# Everything else comes from the lock, so the suite's verdict does not depend on the day of the install.
install: conformance-wheels
	$(PY) -m pip install -q -c $(LOCK) torch==2.13.0
	$(PY) -m pip install -q -c $(LOCK) -e ".[dev,photos]"
	$(TIMM_NO_DEPS)

# NVIDIA's real TensorRT Python bindings (cp311 x86-64, ~1.2 MB each, exact versions + sha256) for the
# conformance tests (tests/conformance). Downloaded, never installed: each version is unpacked per test run.
CONFORMANCE_WHEELS := .cache/conformance/wheels
conformance-wheels:
	@mkdir -p $(CONFORMANCE_WHEELS)
	@for req in tests/conformance/wheels/*.txt; do \
	  $(PY) -m pip download -q --no-deps --require-hashes --only-binary=:all: --python-version 3.11 \
	    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d $(CONFORMANCE_WHEELS) -r $$req || exit 1; \
	done

# The suite CI runs: everything except tests marked slow (gpu/trt tests skip with their reason).
# Fixed order here; `make test-random` shuffles it (pytest-randomly) to catch order dependence.
test:
	$(PY) -m pytest -p no:randomly -m "not slow" $(PYTEST_ARGS)

test-random:
	$(PY) -m pytest -p randomly -m "not slow" $(PYTEST_ARGS)

test-all:
	$(PY) -m pytest -p no:randomly $(PYTEST_ARGS)

# The newest releases pyproject.toml allows, in a throwaway venv: drift is seen here, not suffered in CI.
test-latest:
	rm -rf .venv-latest && $(PY) -m venv .venv-latest
	.venv-latest/bin/pip install -q torch==2.13.0
	.venv-latest/bin/pip install -q --upgrade -e ".[dev,photos]"
	.venv-latest/bin/pip install -q --upgrade --no-deps timm
	.venv-latest/bin/python -m pytest -p no:randomly -m "not slow" $(PYTEST_ARGS)

# Re-freeze the lock from a fresh venv with the newest allowed releases (then run `make install test`).
lock:
	rm -rf .venv-lock && $(PY) -m venv .venv-lock
	.venv-lock/bin/pip install -q torch==2.13.0
	.venv-lock/bin/pip install -q ".[dev,photos]"
	.venv-lock/bin/pip install -q --no-deps timm
	{ sed -n '1,/^[^#]/{/^#/p}' $(LOCK); .venv-lock/bin/pip freeze --exclude resvit-export; } > $(LOCK).new
	mv $(LOCK).new $(LOCK) && rm -rf .venv-lock

# The README's main command on the default model, CPU + ONNX Runtime.
demo:
	resvit-export build --profile 224-1792 -o out/demo --force

# Speed goals are checked here, never as timed unit tests; each script prints and saves JSON in benchmarks/results.
bench:
	$(PY) benchmarks/bench_latency.py
	$(PY) benchmarks/bench_build.py --models vitar_s -o benchmarks/results/build_vitar_s.json
	for m in vitar_s deit_s; do $(PY) benchmarks/bench_cpu.py $$m || exit 1; done
	$(PY) benchmarks/bench_cpu.py --plot --table
	$(PY) benchmarks/bench_build.py

clean:
	rm -rf out build *.egg-info .pytest_cache .venv-latest .venv-lock
