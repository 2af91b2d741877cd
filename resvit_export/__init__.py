"""resvit-export: resolution-flexible ViTs from PyTorch to ONNX and TensorRT.

Pipeline stages, one subpackage each (dependencies point one way: cli -> pipeline -> stages -> models):

    models      reference PyTorch models (source folder ``models/``, installed as ``resvit_export.models``)
    export      torch -> dynamic-axis ONNX, with the range-narrowing check
    graph       onnx-graphsurgeon rewrites and the TensorRT-parser lint
    validate    parity matrix PyTorch vs ONNX Runtime, reports
    precision   FP16 / INT8 (Q/DQ) ONNX and calibration
    trt         profile planner, memory estimate, trtexec lines, engine build/run (TensorRT, lazy), manifest
    bundle      Jetson bundle: archive, device-side build script and runner

Heavy optional dependencies (onnxruntime, onnx-graphsurgeon, tensorrt) are imported inside functions.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
