"""Build one TensorRT engine holding every profile of an EnginePlan, through Polygraphy's TensorRT backend.

Polygraphy (NVIDIA's own tool, tested against every TensorRT release) does the TensorRT calls: parsing
(``NetworkFromOnnxPath``), the builder config (``CreateConfig``: profiles, timing cache, memory pools, optimization
level, progress monitor) and the build (``EngineBytesFromNetwork``, which also saves the timing cache). What stays
here is the project's own part, all of it pure and tested without TensorRT:

* ``build_settings``: the precision decision (versions.check_capabilities) and the profile/pool/cache settings,
  refused before any TensorRT call when they cannot work;
* ``create_config_kwargs``: those settings as the arguments Polygraphy's CreateConfig takes;
* ``ProgressState``: the build progress display fed by TensorRT's IProgressMonitor;
* the manifest written next to the engine.

EXECUTED ONLY WHERE TENSORRT AND A CUDA GPU EXIST; never on this project's machines. tests/conformance checks
every TensorRT and Polygraphy name used here against the real bindings of 10.3, 10.13 and 11.4.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, SupportsInt

from resvit_export.errors import EngineBuildError, InvalidArtifactError, MissingDependencyError, UsageError
from resvit_export.io import atomic_path

from .manifest import build_manifest, host_info, write_manifest
from .planner import EnginePlan
from .trtexec import engine_name_for
from .versions import _onnx_precision_from_name, check_capabilities, parse_version

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = ["build_engines", "BuiltEngines", "BuildSettings", "build_settings", "create_config_kwargs",
           "ProgressState", "make_progress_monitor", "ON_DEVICE_INSTRUCTIONS", "tensorrt_required"]

ON_DEVICE_INSTRUCTIONS = (
    "Build on the target instead: `resvit-export bundle OUT_DIR -o bundle.tar.gz`, copy it to the device, then "
    "`tar xzf bundle.tar.gz && ./build_engine.sh` (JetPack: `sudo apt install tensorrt python3-libnvinfer`; x86-64 "
    "with a GPU: `pip install resvit-export[trt]` from a machine that can reach pypi.nvidia.com)."
)

Shape = tuple[int, ...]


@contextlib.contextmanager
def tensorrt_required() -> Iterator[None]:
    """Wrap ``import tensorrt``: a missing module becomes MissingDependencyError saying how to build on the device.

    The import itself stays in the caller, so type checkers (tests/conformance) resolve ``trt`` to the real module.
    """
    try:
        yield
    except ImportError as err:
        raise MissingDependencyError(f"TensorRT is not importable here ({err}), so no engine can be built or run "
                                     f"on this machine. {ON_DEVICE_INSTRUCTIONS}") from err


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


# --- settings: everything decided before TensorRT is touched -------------------------------------------------
@dataclass(frozen=True)
class BuildSettings:
    """What one engine build asks of TensorRT, decided from the plan, the ONNX file and the TensorRT version."""

    trt_version: str
    input_name: str
    profiles: tuple[tuple[Shape, Shape, Shape], ...]  # (min, opt, max) per optimization profile, in plan order
    onnx_precision: str
    strongly_typed: bool  # 10.x: the ONNX carries its precision (fp16/int8 file); 11 is always strongly typed
    fp16_flag: bool  # 10.x weak typing: BuilderFlag.FP16 on an FP32 ONNX (the flag no longer exists in 11)
    workspace_bytes: int | None
    tactic_dram_bytes: int | None
    builder_optimization_level: int
    timing_cache: Path | None
    warnings: tuple[str, ...]


def _check_profile_order(index: int, lo: Shape, opt: Shape, hi: Shape) -> None:
    """TensorRT's set_shape raises on min > opt or opt > max (research K3); say which profile instead."""
    if not (len(lo) == len(opt) == len(hi)) or any(not a <= b <= c for a, b, c in zip(lo, opt, hi)):
        raise UsageError(f"profile {index} is not ordered min <= opt <= max in every dimension ({lo} / {opt} / {hi}); "
                         "re-plan it with `resvit-export plan`")


def build_settings(plan: EnginePlan, onnx_precision: str, trt_version: str, *, jetpack: str | None = None,
                   workspace_bytes: int | None = None, tactic_dram_bytes: int | None = None,
                   builder_optimization_level: int = 3, timing_cache: str | os.PathLike | None = None) -> BuildSettings:
    """Decide the build. Raises UsageError when this TensorRT cannot build ``plan.precision`` from this ONNX."""
    if not 0 <= builder_optimization_level <= 5:
        raise UsageError(f"builder optimization level must be 0..5, got {builder_optimization_level}")
    for name, value in (("workspace", workspace_bytes), ("tactic DRAM", tactic_dram_bytes)):
        if value is not None and value <= 0:
            raise UsageError(f"the {name} pool limit must be a positive number of bytes, got {value}")
    problems = check_capabilities(trt_version, plan.precision, "python", onnx_precision=onnx_precision,
                                  jetpack=jetpack)
    errors = [str(p) for p in problems if p.severity == "error"]
    if errors:
        raise UsageError("; ".join(errors))
    profiles = []
    for p in plan.profiles:
        s = p.shapes()
        triple = (tuple(s["min"]), tuple(s["opt"]), tuple(s["max"]))
        _check_profile_order(p.index, *triple)
        profiles.append(triple)
    before_11 = parse_version(trt_version)[0] < 11
    return BuildSettings(
        trt_version=str(trt_version), input_name=plan.input_name, profiles=tuple(profiles),
        onnx_precision=onnx_precision,
        strongly_typed=before_11 and onnx_precision in ("fp16", "int8"),
        fp16_flag=before_11 and onnx_precision == "fp32" and plan.precision == "fp16",
        workspace_bytes=workspace_bytes, tactic_dram_bytes=tactic_dram_bytes,
        builder_optimization_level=int(builder_optimization_level),
        timing_cache=Path(timing_cache) if timing_cache else None,
        warnings=tuple(str(p) for p in problems if p.severity == "warning"),
    )


def create_config_kwargs(settings: BuildSettings) -> dict[str, Any]:
    """The arguments for Polygraphy's ``CreateConfig`` (memory pools and progress monitor are added by the caller,
    since they are TensorRT objects). TF32 stays off (Polygraphy's default): FP32 engines are compared with
    PyTorch FP32, and TF32 would trade that agreement for speed without anyone asking."""
    from polygraphy.backend.trt import Profile

    profiles = [Profile().add(settings.input_name, min=lo, opt=opt, max=hi) for lo, opt, hi in settings.profiles]
    return {
        "profiles": profiles,
        "fp16": settings.fp16_flag,
        "tf32": False,
        "builder_optimization_level": settings.builder_optimization_level,
        # a missing file means a fresh cache; a corrupt one (create_timing_cache -> None) too (Polygraphy
        # CreateConfig falls back to an empty cache, research K1)
        "load_timing_cache": str(settings.timing_cache) if settings.timing_cache else None,
    }


def _memory_pool_limits(settings: BuildSettings) -> dict[trt.MemoryPoolType, int]:
    import tensorrt as trt  # only called once the import succeeded; imported here so mypy checks the names

    pools = {}
    if settings.workspace_bytes:
        pools[trt.MemoryPoolType.WORKSPACE] = int(settings.workspace_bytes)
    if settings.tactic_dram_bytes:
        pools[trt.MemoryPoolType.TACTIC_DRAM] = int(settings.tactic_dram_bytes)
    return pools


# --- progress ------------------------------------------------------------------------------------------------
class ProgressState:
    """Thread-safe bookkeeping of TensorRT's nested build phases (pure; the IProgressMonitor subclass feeds it).

    ``report(text)`` is called with one line per phase start/finish and at most every ``min_interval`` s per step.
    ``cancel()`` makes the next ``step_complete`` return False, which asks TensorRT to stop the build.
    ``failure`` holds an exception raised while reporting: TensorRT would only see "cancel" (research K5).
    """

    def __init__(self, report: Callable[[str], None] = print, min_interval: float = 1.0):
        self._report = report
        self._lock = threading.Lock()
        self._phases: dict[str, tuple[str | None, int, int]] = {}  # name -> (parent, steps, done)
        self._last = 0.0
        self._min_interval = min_interval
        self._cancelled = False
        self.failure: BaseException | None = None
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

    def fail(self, err: BaseException) -> None:
        """Keep the first error raised while reporting and cancel the build, so it is not lost."""
        with self._lock:
            self.failure = self.failure or err
            self._cancelled = True

    @property
    def active(self) -> list[str]:
        with self._lock:
            return list(self._phases)


def make_progress_monitor(state: ProgressState) -> trt.IProgressMonitor:
    """A ``trt.IProgressMonitor`` subclass instance forwarding to ``state``. The class is created here, inside the
    factory, so this module imports without TensorRT (call it only once ``import tensorrt`` succeeded). Keep the
    returned object alive for the whole build (its lifetime must exceed the TensorRT objects using it). An exception
    in a callback would be printed by the trampoline and turned into "cancel" (research A25/K5); it is kept in
    ``state.failure`` instead."""

    import tensorrt as trt

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        # SupportsInt: the 11.x bindings declare the counts that way (mypy checks these overrides per version)
        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: SupportsInt) -> None:
            try:
                state.phase_start(phase_name, parent_phase, int(num_steps))
            except Exception as err:  # noqa: BLE001 - any display error must reach the user, not vanish
                state.fail(err)

        def step_complete(self, phase_name: str, step: SupportsInt) -> bool:
            try:
                return state.step_complete(phase_name, int(step))
            except Exception as err:  # noqa: BLE001
                state.fail(err)
                return False

        def phase_finish(self, phase_name: str) -> None:
            try:
                state.phase_finish(phase_name)
            except Exception as err:  # noqa: BLE001
                state.fail(err)

    return _Monitor()


# --- the build -----------------------------------------------------------------------------------------------
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
    calibration_artifacts: Sequence[str | os.PathLike] = (),
    fp32_nodes: list[str] | None = None,
    parity: dict | None = None,
    report: Callable[[str], None] = print,
) -> BuiltEngines:
    """Build one engine holding every profile of ``plan`` into ``out_dir`` (+ manifest.json, timing cache).

    Raises:
        InvalidArtifactError: the ONNX file does not exist.
        MissingDependencyError: TensorRT is not importable (message says how to build on the device).
        UsageError: the TensorRT version cannot build this precision from this ONNX (versions.check_capabilities),
            a profile is out of order, or the plan's input name is not an input of the ONNX.
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

    with tensorrt_required():
        import tensorrt as trt
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath
    from polygraphy.exception import PolygraphyException

    version = str(trt.__version__)
    host = host_info()
    settings = build_settings(plan, onnx_prec, version, jetpack=host.jetpack, workspace_bytes=workspace_bytes,
                              tactic_dram_bytes=tactic_dram_bytes,
                              builder_optimization_level=builder_optimization_level, timing_cache=timing_cache)
    for w in settings.warnings:
        report(f"WARNING: {w}")

    try:
        builder, network, parser = NetworkFromOnnxPath(str(onnx_path), strongly_typed=settings.strongly_typed)()
    except TypeError as err:  # "pybind11::init(): factory function returned nullptr": TensorRT is here, CUDA is not
        raise EngineBuildError(f"TensorRT {version} is installed but could not create a builder ({err}): no usable "
                               "CUDA GPU/driver is visible. A CUDA GPU is required to build; "
                               f"{ON_DEVICE_INSTRUCTIONS}") from err
    except PolygraphyException as err:
        raise EngineBuildError(f"TensorRT {version} could not parse {onnx_path.name} ({err}); run `resvit-export "
                               "lint` for the target TensorRT first") from err
    network_def: trt.INetworkDefinition = network
    inputs = [network_def.get_input(i).name for i in range(network_def.num_inputs)]
    if settings.input_name not in inputs:
        raise UsageError(f"the plan's input {settings.input_name!r} is not an input of {onnx_path.name} (inputs: "
                         f"{', '.join(inputs)}); re-plan with --input-name")

    state = ProgressState(report)
    monitor = make_progress_monitor(state)
    config = CreateConfig(**create_config_kwargs(settings), memory_pool_limits=_memory_pool_limits(settings),
                          progress_monitor=monitor)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    engine_path = out / (engine_name or engine_name_for(plan.precision))
    report(f"building {engine_path.name}: TensorRT {version}, {len(settings.profiles)} profile(s), {plan.precision}")
    t0 = time.monotonic()
    try:
        serialized = EngineBytesFromNetwork((builder, network, parser), config=config,
                                            save_timing_cache=str(settings.timing_cache) if settings.timing_cache
                                            else None)()
    except PolygraphyException as err:
        if state.failure is not None:
            raise EngineBuildError(f"the build was cancelled because the progress display failed: "
                                   f"{state.failure!r}") from state.failure
        raise EngineBuildError(f"TensorRT {version} failed to build {engine_path.name} ({err}); on Jetson try a "
                               "narrower profile, a smaller workspace or a lower optimization level") from err
    seconds = time.monotonic() - t0
    del monitor  # only now: TensorRT held a pointer to it for the whole build
    # Polygraphy's SaveEngine writes in place; a killed build must not leave a half plan that looks complete.
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(bytes(serialized))

    host = replace(host, tensorrt=version)
    artifacts: dict[str, Any] = {"onnx": [onnx_path], "engine": [engine_path]}
    saved_cache = settings.timing_cache if settings.timing_cache and settings.timing_cache.is_file() else None
    if saved_cache is not None:
        artifacts["timing_cache"] = [saved_cache]
    if calibration_artifacts:
        artifacts["calibration"] = [Path(p) for p in calibration_artifacts]
    manifest = build_manifest(plan, artifacts, out, host=host, fp32_nodes=fp32_nodes, onnx_precision=onnx_prec,
                              parity=parity, extra={"build_seconds": round(seconds, 1), "tf32": False,
                                                    "builder_optimization_level": settings.builder_optimization_level})
    manifest_path = write_manifest(manifest, out / "manifest.json")
    return BuiltEngines([engine_path], manifest_path=manifest_path, timing_cache_path=saved_cache,
                        trt_version=version, build_seconds=seconds, build_host=host, warnings=list(settings.warnings))
