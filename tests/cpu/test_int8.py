"""CPU INT8 forms: each is what its name says (dynamic / Q-DQ / QOperator), and bad requests are refused first."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from resvit_export.errors import UsageError

from .graphs import mlp

pytest.importorskip("onnxruntime")

from resvit_export.cpu.int8 import INT8_FORMS, quantize_cpu  # noqa: E402

EXPECTED_OPS = {"dynamic": {"DynamicQuantizeLinear", "MatMulInteger"},
                "static-qdq": {"QuantizeLinear", "DequantizeLinear"},
                "static-qoperator": {"QLinearMatMul"}}


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    return mlp(tmp_path_factory.mktemp("int8") / "mlp.onnx", depth=2)


@pytest.mark.parametrize("form", INT8_FORMS)
def test_each_form_has_its_kernels_and_keeps_dynamic_axes(src, tmp_path, form):
    from resvit_export.cpu.session import cpu_session

    calib = [np.random.default_rng(i).standard_normal((2, 3, 32, 48)).astype(np.float32) for i in range(3)]
    g = quantize_cpu(src, tmp_path / f"{form}.onnx", form, calib)
    ops = {n.op_type for n in onnx.load(str(g.path)).graph.node}
    assert EXPECTED_OPS[form] <= ops
    assert (g.calibration is None) == (form == "dynamic")
    if g.calibration:
        assert g.calibration["images"] == 6 and g.calibration["sizes"] == ["32x48"]
    dims = [d.dim_param for d in onnx.load(str(g.path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["b", "", "h", "w"]
    out = cpu_session(g.path, 1).run(None, {"pixels": np.zeros((3, 3, 40, 24), np.float32)})[0]
    assert out.shape == (3, 10)


def test_refusals(src, tmp_path):
    with pytest.raises(UsageError, match="unknown CPU INT8 form"):
        quantize_cpu(src, tmp_path / "x.onnx", "int4")
    with pytest.raises(UsageError, match="needs calibration images"):
        quantize_cpu(src, tmp_path / "x.onnx", "static-qdq", None)
    assert not (tmp_path / "x.onnx").exists()
