"""One dynamo export of the tiny DeiT shared by the precision tests (exporting is the slow part).

The tiny models carry their trained reference weights (weights/, resvit_export.reference): an FP16 or INT8
verdict on random initialisation says nothing about a real network, so no threshold here is decided by one.
"""

from __future__ import annotations

import pytest

SIZES = ((224, 224), (96, 160), (320, 256))  # square, non-square both ways; all inside the 32-1024 export range


def export_tiny(name: str, path):
    import torch
    from torch.export import Dim

    from resvit_export.reference.checkpoints import reference_model

    model = reference_model(name)
    x = torch.randn(1, 3, 224, 224)
    torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=18, input_names=["pixels"],
                      output_names=["logits"],
                      dynamic_shapes={"x": {0: Dim("batch", min=1, max=8), 2: Dim("height", min=32, max=1024),
                                            3: Dim("width", min=32, max=1024)}})
    return path


@pytest.fixture(scope="session")
def deit_onnx(tmp_path_factory):
    return export_tiny("deit_test", tmp_path_factory.mktemp("deit_export") / "model.onnx")


@pytest.fixture(scope="session")
def calib_set():
    from resvit_export.precision.calibration import CalibrationSet

    return CalibrationSet.synthetic(6, SIZES, seed=0, name="tiny")


def elem_types(model) -> dict[str, int]:
    """tensor name -> ONNX elem type after shape inference (initializers and graph IO included)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.input) + list(g.output)}
    types.update({t.name: t.data_type for t in g.initializer})
    return types
