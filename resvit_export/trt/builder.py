"""Build a TensorRT engine with several optimization profiles from an ONNX file and an EnginePlan.

EXECUTED ONLY WHERE TENSORRT AND A CUDA GPU EXIST. On the development machines of this project TensorRT cannot
be installed (PyPI holds only stub packages), so this module's TensorRT path has never run here; it is written
against the documented Python API and every decision that does not need TensorRT lives in pure, tested code
(planner, versions.check_capabilities, ProgressState, manifest).

API references (TensorRT Python API docs, 10.x and 11.4.0; Polygraphy 0.53 backend/trt):
* ``trt.Builder(logger)``, ``builder.create_network(flags)``; ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` is
  opt-in on 10.x (9.1+) and deprecated/ignored on 11 (always strongly typed) -> we pass 0 on 11.
* ``trt.OnnxParser(network, logger).parse_from_file(path)``; ``parser.num_errors`` / ``parser.get_error(i)``.
* ``builder.create_optimization_profile()``, ``profile.set_shape(name, min, opt, max)``,
  ``config.add_optimization_profile(profile)``.
* ``config.set_flag(trt.BuilderFlag.FP16)`` - only on 10.x weak typing (BuilderFlag.FP16/INT8 removed in 11).
* ``config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE|TACTIC_DRAM, bytes)``;
  ``config.builder_optimization_level`` (0..5, default 3).
* ``config.create_timing_cache(bytes)``, ``config.set_timing_cache(cache, ignore_mismatch)``,
  ``config.get_timing_cache().serialize()``.
* ``config.progress_monitor = <trt.IProgressMonitor subclass>`` with ``phase_start(phase_name, parent_phase,
  num_steps)``, ``step_complete(phase_name, step) -> bool`` (False cancels), ``phase_finish(phase_name)``;
  must be thread-safe (ProgressMonitor docs, 11.3/11.4).
* ``builder.build_serialized_network(network, config)`` -> IHostMemory or None.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable

from resvit_export._optional import require
from resvit_export.errors import EngineBuildError, InvalidArtifactError, MissingDependencyError, UsageError
from resvit_export.io import atomic_path

from .manifest import build_manifest, host_info, write_manifest
from .planner import EnginePlan
from .trtexec import engine_name_for
from .versions import _onnx_precision_from_name, check_capabilities, parse_version

__all__ = ["build_engines", "BuiltEngines", "ProgressState", "make_progress_monitor", "ON_DEVICE_INSTRUCTIONS",
           "require_tensorrt"]

ON_DEVICE_INSTRUCTIONS = (
    "TensorRT is not importable here, so no engine can be built on this machine. Build on the target instead: "
    "`resvit-export bundle OUT_DIR -o bundle.tar.gz`, copy it to the device, then `tar xzf bundle.tar.gz && "
    "./build_engine.sh` (JetPack: `sudo apt install tensorrt python3-libnvinfer`; x86-64 with a GPU: "
    "`pip install resvit-export[trt]` from a machine that can reach pypi.nvidia.com)."
)


def require_tensorrt():
    try:
        return require("tensorrt")
    except MissingDependencyError as err:
        raise MissingDependencyError(f"{err} {ON_DEVICE_INSTRUCTIONS}") from err


class BuiltEngines(list):
    """The engine paths built (a list, as the pipeline expects) plus what the build recorded."""

    def __init__(self, paths, *, manifest_path: Path, timing_cache_path: Path | None, trt_version: str,
                 build_seconds: float, build_host, warnings: list[str]):
        super().__init__(paths)
        self.manifest_path = manifest_path
        self.timing_cache_path = timing_cache_path
        self.trt_version = trt_version
        self.build_seconds = build_seconds
        self.build_host = build_host
        self.warnings = warnings


class ProgressState:
    """Thread-safe bookkeeping of TensorRT's nested build phases (pure; the IProgressMonitor subclass feeds it).

    ``report(text)`` is called with one line per phase start/finish and at most every ``min_interval`` s per step.
    ``cancel()`` makes the next ``step_complete`` return False, which asks TensorRT to stop the build.
    """

    def __init__(self, report: Callable[[str], None] = print, min_interval: float = 1.0):
        self._report = report
        self._lock = threading.Lock()
        self._phases: dict[str, tuple[str | None, int, int]] = {}  # name -> (parent, steps, done)
        self._last = 0.0
        self._min_interval = min_interval
        self._cancelled = False
        self.events: list[tuple[str, str]] = []

    def _depth(self, name: str) -> int:
        d, parent = 0, self._phases.get(name, (None,))[0]
        while parent is not None and d < 16:
            d += 1
            parent = self._phases.get(parent, (None,))[0]
        return d

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        with self._lock:
            self._phases[phase_name] = (parent_phase, max(int(num_steps), 1), 0)
            self.events.append(("start", phase_name))
            self._report(f"{'  ' * self._depth(phase_name)}[TRT] {phase_name} ({num_steps} steps)")

    def step_complete(self, phase_name: str, step: int) -> bool:
        with self._lock:
            parent, steps, _ = self._phases.get(phase_name, (None, 1, 0))
            self._phases[phase_name] = (parent, steps, int(step) + 1)
            now = time.monotonic()
            if parent is None and now - self._last >= self._min_interval:
                self._last = now
                self._report(f"[TRT] {phase_name}: {int(step) + 1}/{steps}")
            return not self._cancelled

    def phase_finish(self, phase_name: str) -> None:
        with self._lock:
            depth = self._depth(phase_name)
            self._phases.pop(phase_name, None)
            self.events.append(("finish", phase_name))
            if depth == 0:
                self._report(f"[TRT] {phase_name} done")

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True

    @property
    def active(self) -> list[str]:
        with self._lock:
            return list(self._phases)


def make_progress_monitor(trt, state: ProgressState):
    """A ``trt.IProgressMonitor`` subclass instance forwarding to ``state``. The class is created here, inside
    the factory, so this module imports without TensorRT. Keep the returned object alive for the whole build
    (TensorRT docs: its lifetime must exceed the TensorRT objects using it)."""

    class _Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            state.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):
            return state.step_complete(phase_name, step)

        def phase_finish(self, phase_name):
            state.phase_finish(phase_name)

    return _Monitor()


def build_engines(
    onnx_path: str | os.PathLike,
    plan: EnginePlan | dict,
    out_dir: str | os.PathLike,
    timing_cache: str | os.PathLike | None = None,
    *,
    workspace_bytes: int | None = None,
    tactic_dram_bytes: int | None = None,
    builder_optimization_level: int = 3,
    onnx_precision: str | None = None,
    engine_name: str | None = None,
    calibration_artifacts: list[str | os.PathLike] = (),
    fp32_nodes: list[str] | None = None,
    parity: dict | None = None,
    report: Callable[[str], None] = print,
) -> BuiltEngines:
    """Build one engine holding every profile of ``plan`` into ``out_dir`` (+ manifest.json, timing cache).

    Raises:
        MissingDependencyError: TensorRT is not importable (message says how to build on the device).
        UsageError: the TensorRT version cannot build this precision from this ONNX (versions.check_capabilities),
            or the plan's input name is not an input of the ONNX.
        EngineBuildError: CUDA/Builder initialisation, ONNX parsing or the build itself failed.
    """
    if isinstance(plan, dict):
        plan = EnginePlan.from_dict(plan)
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise InvalidArtifactError(f"ONNX file {onnx_path} does not exist; run `resvit-export export` first")
    onnx_prec = onnx_precision or _onnx_precision_from_name(onnx_path) or "fp32"
    if not 0 <= builder_optimization_level <= 5:
        raise UsageError(f"builder optimization level must be 0..5, got {builder_optimization_level}")

    trt = require_tensorrt()
    version = str(trt.__version__)
    major = parse_version(version)[0]
    host = host_info()
    problems = check_capabilities(version, plan.precision, "python", onnx_precision=onnx_prec, jetpack=host.jetpack)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise UsageError("; ".join(str(p) for p in errors))
    warnings = [str(p) for p in problems if p.severity == "warning"]
    for w in warnings:
        report(f"WARNING: {w}")

    logger = trt.Logger(trt.Logger.WARNING)
    try:
        builder = trt.Builder(logger)
    except TypeError as err:  # "pybind11::init(): factory function returned nullptr" without a working GPU
        raise EngineBuildError(f"TensorRT could not initialise CUDA ({err}); a CUDA GPU is required to build. "
                               f"{ON_DEVICE_INSTRUCTIONS}") from err

    flags = 0
    if major < 11 and onnx_prec in ("fp16", "int8"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)  # 10.x opt-in; ignored/deprecated in 11
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errs = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(f"TensorRT {version} could not parse {onnx_path.name}: " + " | ".join(errs[:5])
                               + " (run `resvit-export lint` for the target TensorRT first)")
    inputs = [network.get_input(i).name for i in range(network.num_inputs)]
    if plan.input_name not in inputs:
        raise UsageError(f"the plan's input {plan.input_name!r} is not an input of {onnx_path.name} (inputs: "
                         f"{', '.join(inputs)}); re-plan with --input-name")

    config = builder.create_builder_config()
    for pp in plan.profiles:
        prof = builder.create_optimization_profile()
        s = pp.shapes()
        prof.set_shape(plan.input_name, s["min"], s["opt"], s["max"])
        if config.add_optimization_profile(prof) < 0:
            raise EngineBuildError(f"TensorRT rejected profile {pp.index} ({pp.label()})")
    if major < 11 and onnx_prec == "fp32" and plan.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)  # weak typing: exists only on 10.x (removed in 11)
    if workspace_bytes:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if tactic_dram_bytes and hasattr(trt.MemoryPoolType, "TACTIC_DRAM"):
        config.set_memory_pool_limit(trt.MemoryPoolType.TACTIC_DRAM, int(tactic_dram_bytes))
    config.builder_optimization_level = int(builder_optimization_level)

    cache_path = Path(timing_cache) if timing_cache else None
    cache_bytes = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        report(f"WARNING: timing cache {cache_path} was made by another device/TensorRT; starting a fresh one")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=True)

    state = ProgressState(report)
    monitor = None
    if hasattr(trt, "IProgressMonitor"):
        monitor = make_progress_monitor(trt, state)
        config.progress_monitor = monitor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    engine_path = out_dir / (engine_name or engine_name_for(plan.precision))
    report(f"building {engine_path.name}: TensorRT {version}, {len(plan.profiles)} profile(s), {plan.precision}")
    t0 = time.monotonic()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.monotonic() - t0
    del monitor
    if serialized is None:
        raise EngineBuildError(f"TensorRT {version} failed to build {engine_path.name} (see the log above); "
                               "on Jetson try a narrower profile, a smaller workspace or a lower optimization level")
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(memoryview(serialized))
    saved_cache = None
    if cache_path is not None:
        with atomic_path(cache_path) as tmp:
            tmp.write_bytes(memoryview(config.get_timing_cache().serialize()))
        saved_cache = cache_path

    from dataclasses import replace

    host = replace(host, tensorrt=version)
    artifacts = {"onnx": [onnx_path], "engine": [engine_path]}
    if saved_cache is not None:
        artifacts["timing_cache"] = [saved_cache]
    if calibration_artifacts:
        artifacts["calibration"] = [Path(p) for p in calibration_artifacts]
    manifest = build_manifest(plan, artifacts, out_dir, host=host, fp32_nodes=fp32_nodes, onnx_precision=onnx_prec,
                              parity=parity, extra={"build_seconds": round(seconds, 1),
                                                    "builder_optimization_level": builder_optimization_level})
    manifest_path = write_manifest(manifest, out_dir / "manifest.json")
    return BuiltEngines([engine_path], manifest_path=manifest_path, timing_cache_path=saved_cache, trt_version=version,
                        build_seconds=seconds, build_host=host, warnings=warnings)
