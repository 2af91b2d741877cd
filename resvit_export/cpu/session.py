"""One way to open an ONNX Runtime CPU session, so every measurement here runs under the same settings."""

from __future__ import annotations

import os

__all__ = ["cpu_session", "DEFAULT_THREADS"]

# This project's CI machine class has 2 cores; PyTorch is measured with the same count (timing.py).
DEFAULT_THREADS = 2


def cpu_session(onnx_path: str | os.PathLike, threads: int = DEFAULT_THREADS, *, level: str = "all",
                profile_prefix: str | None = None, optimized_path: str | os.PathLike | None = None,
                arena: bool = True):
    """An ``InferenceSession`` on the CPU execution provider.

    ``level``: ORT graph optimisation level ("disable", "basic", "extended", "all"). ``profile_prefix`` turns on
    ORT's profiler (``session.end_profiling()`` returns the JSON path). ``optimized_path`` makes ORT write the graph
    it optimised (its offline mode). ``arena=False`` returns activation memory after each run instead of keeping
    the peak (several sessions of an N²-attention graph at 1792 px do not fit in memory side by side otherwise).
    """
    from resvit_export._optional import require

    ort = require("onnxruntime")
    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.graph_optimization_level = levels[level]
    opts.enable_cpu_mem_arena = arena
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile_prefix)
    if optimized_path is not None:
        opts.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
