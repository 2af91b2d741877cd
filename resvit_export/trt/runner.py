"""Run a multi-profile engine: pick the profile containing the input, switch to it, execute.

``select_profile`` is pure and unit-tested. ``EngineRunner`` needs TensorRT and a CUDA GPU and has NOT been
executed on this project's machines (TensorRT cannot be installed there). CUDA memory and streams come from
torch (already a project dependency; lazily imported), so no cuda-python/pycuda is needed on the workstation
side. The bundle's device-side ``run_engine.py`` is the torch-free alternative (tensorrt + numpy + cuda-python).

Runtime order (TensorRT 10+ name-based API, NvInferRuntime.h / Python IExecutionContext docs 10.x-11.4):
``set_optimization_profile_async(idx, stream)`` BEFORE ``set_input_shape(name, shape)``, then
``set_tensor_address`` for every I/O tensor, then ``execute_async_v3(stream)``. Switching may enqueue copies on
the given stream, so we synchronise it before the enqueue stream (the same stream here) is used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from resvit_export._optional import require
from resvit_export.errors import EngineBuildError, InvalidArtifactError, UsageError

__all__ = ["select_profile", "EngineRunner", "normalize_profiles"]


def _fmt(shape) -> str:
    return "x".join(str(int(d)) for d in shape)


def normalize_profiles(profiles) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(min, max) full shapes from PlannedProfile objects, plan/manifest dicts or (min, max)/(min, opt, max) tuples."""
    out = []
    for p in profiles:
        if hasattr(p, "shapes"):
            s = p.shapes()
            out.append((tuple(s["min"]), tuple(s["max"])))
        elif isinstance(p, dict):
            s = p.get("shapes") or p
            out.append((tuple(s["min"]), tuple(s["max"])))
        else:
            seq = tuple(p)
            out.append((tuple(seq[0]), tuple(seq[-1])))
    return out


def select_profile(profiles: Sequence, shape: Sequence[int]) -> int:
    """Index of the tightest profile (smallest max volume) whose [min, max] box contains ``shape``.

    Raises UsageError naming every profile when none contains the shape.
    """
    boxes = normalize_profiles(profiles)
    shape = tuple(int(d) for d in shape)
    best, best_vol = None, None
    for i, (lo, hi) in enumerate(boxes):
        if len(lo) != len(shape):
            raise UsageError(f"input shape {_fmt(shape)} has rank {len(shape)}, profile {i} has rank {len(lo)}")
        if all(a <= d <= b for a, d, b in zip(lo, shape, hi)):
            vol = 1
            for d in hi:
                vol *= d
            if best_vol is None or vol < best_vol:
                best, best_vol = i, vol
    if best is None:
        listing = "; ".join(f"profile {i}: {_fmt(lo)} .. {_fmt(hi)}" for i, (lo, hi) in enumerate(boxes))
        raise UsageError(f"input shape {_fmt(shape)} lies outside every optimization profile of this engine "
                         f"({listing}); resize the input into one of them or rebuild with a wider --profile")
    return best


class EngineRunner:
    """Load a plan (after checking its sidecar manifest) and run it on whatever profile fits each input.

    Needs TensorRT + torch with CUDA. Not executed on CPU-only machines.
    """

    def __init__(self, engine_path: str | os.PathLike, *, device: int = 0, check_manifest: bool = True):
        from .manifest import check_manifest_against_host, find_manifest, host_info, read_manifest, verify_artifacts

        engine_path = Path(engine_path)
        if not engine_path.is_file():
            raise InvalidArtifactError(f"engine {engine_path} does not exist")
        if check_manifest:  # explain mismatches BEFORE deserializing (TensorRT's own error is cryptic)
            mpath = find_manifest(engine_path)
            manifest = read_manifest(mpath)
            tampered = verify_artifacts(manifest, mpath.parent)
            if tampered:
                raise InvalidArtifactError("; ".join(tampered))
            mismatches = check_manifest_against_host(manifest, host_info())
            if mismatches:
                raise EngineBuildError("; ".join(mismatches))
        self.trt = trt = require("tensorrt")
        self.torch = torch = require("torch")
        if not torch.cuda.is_available():
            raise EngineBuildError("no CUDA device is visible; EngineRunner needs a GPU")
        self.device = torch.device("cuda", device)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise EngineBuildError(f"TensorRT {trt.__version__} could not deserialize {engine_path.name}; it was "
                                   "built by another TensorRT version or GPU - rebuild on this device")
        strategy = getattr(trt, "ExecutionContextAllocationStrategy", None)  # 10.0+
        if strategy is not None and self.engine.num_optimization_profiles > 1:
            self.context = self.engine.create_execution_context(strategy.ON_PROFILE_CHANGE)
        else:
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        if len(self.inputs) != 1:
            raise EngineBuildError(f"expected one image input, the engine has {self.inputs}")
        self.input_name = self.inputs[0]
        self.profiles = [tuple(tuple(s) for s in self.engine.get_tensor_profile_shape(self.input_name, i))
                         for i in range(self.engine.num_optimization_profiles)]
        self.stream = torch.cuda.Stream(device=self.device)
        self.active_profile = 0  # a new context starts on profile 0

    def _torch_dtype(self, name):
        import numpy as np

        np_dtype = self.trt.nptype(self.engine.get_tensor_dtype(name))
        return {np.float32: self.torch.float32, np.float16: self.torch.float16, np.int32: self.torch.int32,
                np.int64: self.torch.int64, np.int8: self.torch.int8, np.bool_: self.torch.bool}[np_dtype]

    def __call__(self, pixels) -> dict:
        torch = self.torch
        x = torch.as_tensor(pixels).to(self.device, dtype=self._torch_dtype(self.input_name)).contiguous()
        idx = select_profile(self.profiles, tuple(x.shape))
        handle = self.stream.cuda_stream
        ctx = self.context
        if idx != self.active_profile:
            if not ctx.set_optimization_profile_async(idx, handle):
                raise EngineBuildError(f"TensorRT refused to switch to profile {idx}")
            self.stream.synchronize()
            self.active_profile = idx
        if not ctx.set_input_shape(self.input_name, tuple(x.shape)):
            raise EngineBuildError(f"TensorRT rejected input shape {tuple(x.shape)} for profile {idx}")
        ctx.set_tensor_address(self.input_name, x.data_ptr())
        outs = {}
        for name in self.outputs:
            out = torch.empty(tuple(ctx.get_tensor_shape(name)), dtype=self._torch_dtype(name), device=self.device)
            ctx.set_tensor_address(name, out.data_ptr())
            outs[name] = out
        self.stream.wait_stream(torch.cuda.current_stream(self.device))  # x was produced on the current stream
        if not ctx.execute_async_v3(handle):
            raise EngineBuildError(f"execute_async_v3 failed for input {tuple(x.shape)} on profile {idx}")
        self.stream.synchronize()
        return outs
