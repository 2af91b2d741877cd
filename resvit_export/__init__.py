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
__all__ = ["__version__", "build"]


def build(model, profiles, out_dir, **options):
    """Python API of ``resvit-export build``: ``model`` is a registry name, ``"pkg.module:factory"``, or an
    ``nn.Module`` meeting the model contract (models/contract.py); ``profiles`` one or more ranges ("64-256") or
    ResolutionProfile objects; ``options`` any other :class:`~resvit_export.pipeline.BuildOptions` field
    (precision, weights, calib_data, engine, force, ...). Returns the BuildResult; raises what the CLI reports.
    Refusals (a missing contract piece, a profile outside the model's size rule) come before any file exists.
    """
    from pathlib import Path

    from .pipeline import BuildOptions
    from .pipeline import build as run_build
    from .profiles import parse_profile

    items = [profiles] if isinstance(profiles, str) or not hasattr(profiles, "__iter__") else list(profiles)
    parsed = [parse_profile(p) if isinstance(p, str) else p for p in items]
    return run_build(BuildOptions(profiles=parsed, out_dir=Path(out_dir), model=model, **options))
