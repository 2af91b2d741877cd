"""Lazy access to heavy optional dependencies with an actionable error when they are missing."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["require", "is_available"]

# import name -> (pip requirement, why it is needed)
_HINTS = {
    "onnxruntime": ("onnxruntime", "ONNX Runtime runs the parity checks"),
    "onnx_graphsurgeon": ("onnx-graphsurgeon", "graph rewriting uses onnx-graphsurgeon"),
    "polygraphy": ("polygraphy", "parity comparison uses Polygraphy's comparators"),
    "onnx": ("onnx", "ONNX export and checking"),
    "onnxscript": ("onnxscript", "torch.onnx.export (dynamo) needs onnxscript"),
    "tensorrt": (
        "resvit-export[trt]",
        "engine building needs TensorRT (on Jetson it comes with JetPack: `sudo apt install python3-libnvinfer`)",
    ),
    "matplotlib": ("matplotlib", "the parity plot uses matplotlib"),
}


def is_available(name: str) -> bool:
    """True when ``name`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require(name: str) -> ModuleType:
    """Import ``name`` or raise MissingDependencyError saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        pip_name, why = _HINTS.get(name, (name, f"this step needs {name}"))
        raise MissingDependencyError(
            f"{why}, but `import {name}` failed ({err}). Install it with `pip install {pip_name}`."
        ) from err
