"""FP16 / INT8 (Q/DQ) ONNX and multi-resolution calibration (precision lives IN the ONNX for TensorRT 11).

    policy       resolve_precision(), the ViT FP32-kept-ops policy, --keep-fp32 validation
    fp16         make_fp16_onnx(src, dst, keep_fp32=None) -> PrecisionResult
    int8         make_int8_onnx(src, dst, calibration, method="entropy", keep_fp32=None, policy="weighted")
                 -> PrecisionResult; node_roles(), INT8_POLICIES
    calibration  CalibrationSet, compute_ranges() with the (ONNX, set, method) cache, TensorRT cache text

Names are loaded lazily so importing the package needs neither onnx nor onnxruntime.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "PRECISIONS": "policy", "DEFAULT_FP32_OPS": "policy", "PrecisionPolicy": "policy",
    "resolve_precision": "policy", "parse_keep_fp32": "policy", "resolve_keep_fp32": "policy",
    "PrecisionResult": "fp16", "make_fp16_onnx": "fp16",
    "make_int8_onnx": "int8",
    "CalibrationSet": "calibration", "compute_ranges": "calibration", "parse_resolutions": "calibration",
    "write_trt_calibration_cache": "calibration",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
