#!/usr/bin/env python3
"""Run a resvit-export engine on the device with only tensorrt + numpy + cuda-python (no torch).

    python3 run_engine.py model.fp16.plan                       # random input at every profile's opt shape
    python3 run_engine.py model.fp16.plan --shape 1x3x448x640   # one shape; picks the profile that contains it
    python3 run_engine.py model.fp16.plan --input image.npy     # an NCHW float32 array

The profile choice is profile_select.py (shipped next to this file), the same file the workstation's runner
imports. CUDA memory and streams come from cuda-python (module ``cuda.bindings.runtime`` from 12.6.2, ``cuda.cudart``
before; pin it to your JetPack's CUDA major, see README.txt). Every TensorRT call here is checked by the project's
conformance tests against the real bindings of TensorRT 10.3, 10.13 and 11.4; it has never run on a GPU there.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

try:  # imported as resvit_export.bundle.device.run_engine (the workstation, HPAR's check)
    from .profile_select import select_profile
except ImportError:  # run as a script inside the bundle, where profile_select.py ships beside this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from profile_select import select_profile  # type: ignore[no-redef]  # the same file, by its script name

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = ["EngineRunner", "DeviceError", "select_profile", "main"]


class DeviceError(RuntimeError):
    """TensorRT or CUDA refused something; the message says what and what to do."""


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6.2 (13.x has only this path)
    except ImportError:
        try:
            from cuda import cudart  # cuda-python 12.x before 12.6.2
        except ImportError:
            raise DeviceError("cuda-python is missing: pip install 'cuda-python>=12.6.2,<13' (JetPack 6) or "
                              "'cuda-python>=13,<14' (JetPack 7)") from None
    return cudart


def _dims(dims: trt.Dims) -> tuple[int, ...]:
    """A TensorRT Dims as a tuple (Dims is indexable; its stubs declare no __iter__)."""
    return tuple(int(dims[i]) for i in range(len(dims)))


def _check(result: Any) -> Any:
    """cuda-python calls return (err,) or (err, value); raise on an error, return the value."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise DeviceError(f"CUDA error {err}")
    return rest[0] if len(rest) == 1 else rest


class EngineRunner:
    """One engine, one execution context, one CUDA stream; ``infer`` picks the profile containing the input."""

    def __init__(self, plan_path: str):
        try:
            import tensorrt as trt
        except ImportError:
            raise DeviceError("TensorRT Python bindings are missing (JetPack: sudo apt install python3-libnvinfer)") \
                from None
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        try:
            runtime = trt.Runtime(self._logger)
        except TypeError as err:  # the factory returned NULL: TensorRT is installed, CUDA did not initialise
            raise DeviceError(f"TensorRT {trt.__version__} could not create a runtime ({err}): no usable CUDA GPU "
                              "or driver is visible") from err
        with open(plan_path, "rb") as f:
            engine = runtime.deserialize_cuda_engine(f.read())
        if engine is None:
            raise DeviceError(f"TensorRT {trt.__version__} could not load {plan_path}: it was built by another "
                              "TensorRT version or GPU; rebuild it here with ./build_engine.sh")
        self._engine: trt.ICudaEngine = engine
        self._cudart = _cudart()
        # memory for the active profile only, not the largest one (matters on 8 GB boards)
        context = engine.create_execution_context(trt.ExecutionContextAllocationStrategy.ON_PROFILE_CHANGE)
        if context is None:
            raise DeviceError("TensorRT could not create an execution context (out of device memory?)")
        self._context: trt.IExecutionContext = context
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise DeviceError(f"expected one image input, the engine has {inputs}")
        self.input_name: str = inputs[0]
        self._outputs = [n for n in names if n not in inputs]
        self.profiles: list[tuple] = []
        for index in range(engine.num_optimization_profiles):
            lo, opt, hi = engine.get_tensor_profile_shape(self.input_name, index)
            self.profiles.append((_dims(lo), _dims(opt), _dims(hi)))
        self._stream = _check(self._cudart.cudaStreamCreate())
        self._active = 0  # a new context starts on profile 0
        self.last_profile = 0
        self.last_ms = 0.0

    def _set_address(self, name: str, ptr: int) -> None:
        if not self._context.set_tensor_address(name, ptr):  # False when the name or pointer is refused (K4)
            raise DeviceError(f"TensorRT refused the device address of tensor {name!r}")

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        trt, cudart, ctx = self._trt, self._cudart, self._context
        x = np.ascontiguousarray(x, dtype=trt.nptype(self._engine.get_tensor_dtype(self.input_name)))
        try:
            index = select_profile(self.profiles, x.shape)
        except ValueError as err:
            raise DeviceError(str(err)) from None
        handle = int(self._stream)  # TensorRT takes the raw cudaStream_t as an int
        if index != self._active:
            try:  # raises RuntimeError on failure; it never returns False (research A37/K2)
                ctx.set_optimization_profile_async(index, handle)
            except RuntimeError as err:
                raise DeviceError(f"TensorRT could not switch to profile {index}: {err}") from err
            _check(cudart.cudaStreamSynchronize(self._stream))
            self._active = index
        if not ctx.set_input_shape(self.input_name, x.shape):
            raise DeviceError(f"shape {x.shape} rejected by profile {index}")
        kind = cudart.cudaMemcpyKind
        buffers = []
        try:
            d_in = _check(cudart.cudaMalloc(x.nbytes))
            buffers.append(d_in)
            _check(cudart.cudaMemcpyAsync(d_in, x.ctypes.data, x.nbytes, kind.cudaMemcpyHostToDevice, self._stream))
            self._set_address(self.input_name, d_in)
            host_out = {}
            for name in self._outputs:
                shape = _dims(ctx.get_tensor_shape(name))
                arr = np.empty(shape, dtype=trt.nptype(self._engine.get_tensor_dtype(name)))
                ptr = _check(cudart.cudaMalloc(max(arr.nbytes, 1)))
                buffers.append(ptr)
                self._set_address(name, ptr)
                host_out[name] = (arr, ptr)
            t0 = time.perf_counter()
            if not ctx.execute_async_v3(handle):
                raise DeviceError(f"execute_async_v3 failed for input {x.shape} on profile {index}")
            for arr, ptr in host_out.values():
                _check(cudart.cudaMemcpyAsync(arr.ctypes.data, ptr, arr.nbytes, kind.cudaMemcpyDeviceToHost,
                                              self._stream))
            _check(cudart.cudaStreamSynchronize(self._stream))
            self.last_ms = (time.perf_counter() - t0) * 1e3
            self.last_profile = index
        finally:
            for ptr in buffers:
                cudart.cudaFree(ptr)
        return {name: arr for name, (arr, _ptr) in host_out.items()}

    def close(self) -> None:
        stream, self._stream = getattr(self, "_stream", None), None
        if stream is not None:
            self._cudart.cudaStreamDestroy(stream)


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"bad --shape {text!r}; write BxCxHxW, e.g. 1x3x448x640") from None
    if len(dims) != 4:
        raise SystemExit(f"bad --shape {text!r}; write BxCxHxW")
    return dims


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("engine")
    ap.add_argument("--shape", help="BxCxHxW of a random input (default: every profile's opt shape)")
    ap.add_argument("--input", help=".npy file with an NCHW float32 batch")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        runner = EngineRunner(args.engine)
    except DeviceError as err:
        raise SystemExit(str(err)) from None
    rng = np.random.default_rng(args.seed)
    if args.input:
        feeds = [np.load(args.input)]
    elif args.shape:
        feeds = [rng.standard_normal(parse_shape(args.shape), dtype=np.float32)]
    else:
        feeds = [rng.standard_normal(p[1], dtype=np.float32) for p in runner.profiles]
    ok = True
    try:
        for x in feeds:
            outs = runner.infer(x)
            for name, arr in outs.items():
                finite = bool(np.isfinite(arr).all())
                ok &= finite
                top = np.argsort(arr.reshape(arr.shape[0], -1)[0])[::-1][:5].tolist() if arr.size else []
                print(f"{'x'.join(map(str, x.shape))}: profile {runner.last_profile}, {runner.last_ms:.2f} ms, "
                      f"{name} {list(arr.shape)} finite={finite} top5={top}")
    except DeviceError as err:
        raise SystemExit(str(err)) from None
    finally:
        runner.close()
    print(("PASSED" if ok else "FAILED") + f" | run_engine.py {args.engine}")
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
