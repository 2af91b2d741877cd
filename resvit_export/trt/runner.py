"""Run a multi-profile engine on the host: pick the profile containing the input, switch to it, execute.

The execution itself is Polygraphy's ``TrtRunner`` (it owns the context, the CUDA stream, the buffers and the
order ``set_optimization_profile_async`` -> ``set_input_shape`` -> ``set_tensor_address`` -> ``execute_async_v3``,
checking each result). What stays here is the project's own part: the manifest check before deserializing, and
the profile choice, which is the same file the device-side runner ships with (bundle/device/profile_select.py).

Needs TensorRT and a CUDA GPU; never executed on this project's machines (see README "What ran where").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from resvit_export.bundle.device import profile_select
from resvit_export.errors import EngineBuildError, InvalidArtifactError, UsageError

from .builder import tensorrt_required

if TYPE_CHECKING:
    import numpy as np
    import tensorrt as trt

__all__ = ["select_profile", "EngineRunner", "normalize_profiles", "engine_profiles"]

ShapeTriple = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


def normalize_profiles(profiles: Sequence[Any]) -> list[ShapeTriple]:
    """(min, opt, max) full shapes from PlannedProfile objects, plan/manifest dicts or (min, opt, max) tuples."""
    out = []
    for p in profiles:
        if hasattr(p, "shapes"):
            s = p.shapes()
        elif isinstance(p, dict):
            s = p.get("shapes") or p
        else:
            lo, opt, hi = p
            s = {"min": lo, "opt": opt, "max": hi}
        out.append((tuple(s["min"]), tuple(s["opt"]), tuple(s["max"])))
    return out


def select_profile(profiles: Sequence[Any], shape: Sequence[int]) -> int:
    """The device rule (profile_select.select_profile) on any profile form; UsageError when nothing fits."""
    try:
        return profile_select.select_profile(normalize_profiles(profiles), shape)
    except ValueError as err:
        raise UsageError(str(err)) from err


def _dims(dims: trt.Dims) -> tuple[int, ...]:
    return tuple(int(dims[i]) for i in range(len(dims)))  # Dims is indexable; its stubs declare no __iter__


def engine_profiles(engine: trt.ICudaEngine, input_name: str) -> list[ShapeTriple]:
    """(min, opt, max) of ``input_name`` for every optimization profile of a deserialized engine."""
    out: list[ShapeTriple] = []
    for index in range(engine.num_optimization_profiles):
        lo, opt, hi = engine.get_tensor_profile_shape(input_name, index)
        out.append((_dims(lo), _dims(opt), _dims(hi)))
    return out


def _check_manifest(engine_path: Path) -> None:
    """Explain a plan that cannot load here BEFORE deserializing it (TensorRT's own error is cryptic)."""
    from .manifest import check_manifest_against_host, find_manifest, host_info, read_manifest, verify_artifacts

    manifest_path = find_manifest(engine_path)
    manifest = read_manifest(manifest_path)
    tampered = verify_artifacts(manifest, manifest_path.parent)
    if tampered:
        raise InvalidArtifactError("; ".join(tampered))
    mismatches = check_manifest_against_host(manifest, host_info())
    if mismatches:
        raise EngineBuildError("; ".join(mismatches))


class EngineRunner:
    """Load a plan (after checking its sidecar manifest) and run each input on the profile that contains it.

    The interface matches bundle/device/run_engine.EngineRunner: ``input_name``, ``profiles`` (min, opt, max),
    ``infer(x) -> {output name: numpy array}``, ``close()``.
    """

    def __init__(self, plan_path: str | os.PathLike, *, check_manifest: bool = True):
        plan_path = Path(plan_path)
        if not plan_path.is_file():
            raise InvalidArtifactError(f"engine {plan_path} does not exist")
        if check_manifest:
            _check_manifest(plan_path)
        with tensorrt_required():
            import tensorrt as trt
        from polygraphy.backend.trt import EngineFromBytes, TrtRunner
        from polygraphy.exception import PolygraphyException

        try:
            engine: trt.ICudaEngine = EngineFromBytes(plan_path.read_bytes())()
        except TypeError as err:  # the Runtime factory returned NULL: no usable CUDA device
            raise EngineBuildError(f"TensorRT {trt.__version__} could not create a runtime ({err}): no usable CUDA "
                                   "GPU/driver is visible") from err
        except PolygraphyException as err:
            raise EngineBuildError(f"TensorRT {trt.__version__} could not deserialize {plan_path.name} ({err}); it "
                                   "was built by another TensorRT version or GPU: rebuild it on this device") from err
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise EngineBuildError(f"expected one image input, the engine has {inputs}")
        self.input_name: str = inputs[0]
        self.profiles: list[ShapeTriple] = engine_profiles(engine, self.input_name)
        self._input_dtype = trt.nptype(engine.get_tensor_dtype(self.input_name))
        # "profile": context memory sized for the active profile, not the largest one (matters on 8 GB Jetsons)
        self._runner = TrtRunner(engine, allocation_strategy="profile")
        self._runner.activate()
        self.active_profile = 0  # a new context starts on profile 0

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        import numpy as np

        from polygraphy.exception import PolygraphyException

        x = np.ascontiguousarray(x, dtype=self._input_dtype)
        index = select_profile(self.profiles, x.shape)
        try:
            if index != self.active_profile:
                self._runner.set_profile(index)  # raises (never returns False) when TensorRT refuses
                self.active_profile = index
            outputs = self._runner.infer({self.input_name: x})
        except (RuntimeError, PolygraphyException) as err:
            raise EngineBuildError(f"TensorRT failed to run input {tuple(x.shape)} on profile {index}: {err}") from err
        return {name: np.asarray(value) for name, value in outputs.items()}

    def close(self) -> None:
        if self._runner.is_active:
            self._runner.deactivate()
