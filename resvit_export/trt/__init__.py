"""TensorRT side of resvit-export: planning (pure), trtexec lines (pure), version facts (pure), manifest,
and the builder/runner that need TensorRT + a CUDA GPU (imported lazily; never at package import).

Import the submodules directly (``from resvit_export.trt.planner import plan_engine``); nothing here imports
tensorrt.
"""

__all__ = ["devices", "memory", "planner", "trtexec", "versions", "builder", "runner", "manifest"]
