"""Shared check for model tests: one dynamic-shape ONNX export, proven against eager in ONNX Runtime."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

# axis -> (name, min, max) requested from the exporter for image models
IMAGE_DIMS = {0: ("batch", 1, 8), 2: ("height", 32, 4096), 3: ("width", 32, 4096)}


def export_image_model(model, path, example_hw=(448, 448)):
    """torch.onnx.export (dynamo) with dynamic batch/height/width; returns the ONNXProgram (saved to path)."""
    from torch.export import Dim

    dims = {axis: Dim(name, min=lo, max=hi) for axis, (name, lo, hi) in IMAGE_DIMS.items()}
    program = torch.onnx.export(model, (torch.randn(2, 3, *example_hw),), dynamo=True, opset_version=18,
                                verbose=False, dynamic_shapes={"x": dims})
    program.save(str(path))
    return program


def assert_ranges_kept(program):
    """Every requested dim is still symbolic with exactly the requested range (nothing narrowed)."""
    ep = program.exported_program
    (name,) = ep.graph_signature.user_inputs
    node = next(n for n in ep.graph.nodes if n.name == name)
    for axis, (_, lo, hi) in IMAGE_DIMS.items():
        dim = node.meta["val"].shape[axis]
        assert isinstance(dim, torch.SymInt), f"axis {axis} was specialized to {dim}"
        vr = ep.range_constraints[dim.node.expr]
        assert (int(vr.lower), int(vr.upper)) == (lo, hi), f"axis {axis} narrowed to {vr}"


def assert_ort_matches(model, path, sizes, atol=1e-4):
    """ONNX Runtime == eager at each (H, W); batch 2 except at >= 1792 px (memory)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shape = sess.get_inputs()[0].shape
    assert all(isinstance(shape[i], str) for i in (0, 2, 3)), f"ONNX input is not dynamic: {shape}"
    for h, w in sizes:
        x = torch.randn(1 if h >= 1792 else 2, 3, h, w)
        with torch.no_grad():
            ref = model(x).numpy()
        out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        assert np.abs(out - ref).max() < atol, (h, w, float(np.abs(out - ref).max()))


@pytest.fixture(scope="session")
def export_check():
    pytest.importorskip("onnxruntime")
    return types.SimpleNamespace(export=export_image_model, ranges_kept=assert_ranges_kept,
                                 ort_matches=assert_ort_matches)
