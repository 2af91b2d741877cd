#!/usr/bin/env python3
"""Run a resvit-export engine on the device with only tensorrt + numpy + cuda-python (no torch).

    python3 run_engine.py model.fp16.plan                       # random input at every profile's opt shape
    python3 run_engine.py model.fp16.plan --shape 1x3x448x640   # one shape; picks the profile that contains it
    python3 run_engine.py model.fp16.plan --input image.npy     # an NCHW float32 array

CUDA access: cuda-python (``pip install cuda-python``; module ``cuda.bindings.runtime``, older releases
``cuda.cudart``) - chosen over pycuda because NVIDIA maintains it, it has aarch64 wheels and needs no compiler.
TensorRT calls (TensorRT 10.x / 11.x Python API): Runtime.deserialize_cuda_engine, num_io_tensors,
get_tensor_name/get_tensor_mode/get_tensor_dtype, get_tensor_profile_shape(name, idx),
set_optimization_profile_async(idx, stream) BEFORE set_input_shape, set_tensor_address, execute_async_v3.
This file has never run on this project's CI machines (no TensorRT there); CI only checks that it compiles and
imports without torch.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def select_profile(profiles, shape):
    """Index of the tightest profile whose [min, max] contains ``shape`` (same rule as resvit_export.trt.runner)."""
    best, best_vol = None, None
    for i, (lo, _opt, hi) in enumerate(profiles):
        if len(lo) == len(shape) and all(a <= d <= b for a, d, b in zip(lo, shape, hi)):
            vol = int(np.prod(hi))
            if best_vol is None or vol < best_vol:
                best, best_vol = i, vol
    if best is None:
        listing = "; ".join(f"profile {i}: {'x'.join(map(str, lo))} .. {'x'.join(map(str, hi))}"
                            for i, (lo, _o, hi) in enumerate(profiles))
        raise SystemExit(f"input shape {'x'.join(map(str, shape))} is outside every profile ({listing})")
    return best


def parse_shape(text):
    try:
        dims = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"bad --shape {text!r}; write BxCxHxW, e.g. 1x3x448x640")
    if len(dims) != 4:
        raise SystemExit(f"bad --shape {text!r}; write BxCxHxW")
    return dims


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise SystemExit("cuda-python is required: pip install cuda-python (matching your CUDA major)")
    return cudart


def _check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise SystemExit(f"CUDA error {err}")
    return rest[0] if len(rest) == 1 else rest


class Runner:
    def __init__(self, engine_path):
        try:
            import tensorrt as trt
        except ImportError:
            raise SystemExit("TensorRT Python bindings are missing (JetPack: sudo apt install python3-libnvinfer)")
        self.trt = trt
        self.cudart = _cudart()
        self.logger = trt.Logger(trt.Logger.WARNING)
        with open(engine_path, "rb") as f:
            self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(f.read())
        if self.engine is None:
            raise SystemExit(f"TensorRT {trt.__version__} could not load {engine_path}: it was built by another "
                             "TensorRT version or GPU; rebuild with ./build_engine.sh")
        strategy = getattr(trt, "ExecutionContextAllocationStrategy", None)
        if strategy is not None:
            self.ctx = self.engine.create_execution_context(strategy.ON_PROFILE_CHANGE)
        else:
            self.ctx = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.input = self.inputs[0]
        self.profiles = [tuple(tuple(s) for s in self.engine.get_tensor_profile_shape(self.input, i))
                         for i in range(self.engine.num_optimization_profiles)]
        self.stream = _check(self.cudart.cudaStreamCreate())
        self.handle = int(self.stream)  # TensorRT takes the raw cudaStream_t as an int
        self.active = 0

    def run(self, x):
        trt, cudart = self.trt, self.cudart
        x = np.ascontiguousarray(x.astype(trt.nptype(self.engine.get_tensor_dtype(self.input))))
        idx = select_profile(self.profiles, x.shape)
        if idx != self.active:
            if not self.ctx.set_optimization_profile_async(idx, self.handle):
                raise SystemExit(f"cannot switch to profile {idx}")
            _check(cudart.cudaStreamSynchronize(self.stream))
            self.active = idx
        if not self.ctx.set_input_shape(self.input, x.shape):
            raise SystemExit(f"shape {x.shape} rejected by profile {idx}")
        buffers = []
        d_in = _check(cudart.cudaMalloc(x.nbytes))
        buffers.append(d_in)
        kind = cudart.cudaMemcpyKind
        _check(cudart.cudaMemcpyAsync(d_in, x.ctypes.data, x.nbytes, kind.cudaMemcpyHostToDevice, self.stream))
        self.ctx.set_tensor_address(self.input, d_in)
        host_out = {}
        for name in self.outputs:
            shape = tuple(self.ctx.get_tensor_shape(name))
            arr = np.empty(shape, dtype=trt.nptype(self.engine.get_tensor_dtype(name)))
            ptr = _check(cudart.cudaMalloc(max(arr.nbytes, 1)))
            buffers.append(ptr)
            self.ctx.set_tensor_address(name, ptr)
            host_out[name] = (arr, ptr)
        t0 = time.perf_counter()
        if not self.ctx.execute_async_v3(self.handle):
            raise SystemExit("execute_async_v3 failed")
        for arr, ptr in host_out.values():
            _check(cudart.cudaMemcpyAsync(arr.ctypes.data, ptr, arr.nbytes, kind.cudaMemcpyDeviceToHost, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        ms = (time.perf_counter() - t0) * 1e3
        for ptr in buffers:
            _check(cudart.cudaFree(ptr))
        return idx, ms, {n: a for n, (a, _p) in host_out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("engine")
    ap.add_argument("--shape", help="BxCxHxW of a random input (default: every profile's opt shape)")
    ap.add_argument("--input", help=".npy file with an NCHW float32 batch")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    runner = Runner(args.engine)
    rng = np.random.default_rng(args.seed)
    if args.input:
        feeds = [np.load(args.input)]
    elif args.shape:
        feeds = [rng.standard_normal(parse_shape(args.shape), dtype=np.float32)]
    else:
        feeds = [rng.standard_normal(p[1], dtype=np.float32) for p in runner.profiles]
    ok = True
    for x in feeds:
        idx, ms, outs = runner.run(x)
        for name, arr in outs.items():
            finite = bool(np.isfinite(arr).all())
            ok &= finite
            top = np.argsort(arr.reshape(arr.shape[0], -1)[0])[::-1][:5].tolist() if arr.size else []
            print(f"{'x'.join(map(str, x.shape))}: profile {idx}, {ms:.2f} ms, {name} {list(arr.shape)} "
                  f"finite={finite} top5={top}")
    print(("PASSED" if ok else "FAILED") + f" | run_engine.py {args.engine}")
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
