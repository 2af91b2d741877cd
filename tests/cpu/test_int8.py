"""CPU INT8 forms: each is what its name says (dynamic / Q-DQ / QOperator), and bad requests are refused first."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from resvit_export.errors import UsageError

from .graphs import if_matmul, mlp

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


def test_a_dynamic_graphs_output_depends_on_its_batch_mates_and_a_static_graphs_does_not(src, tmp_path):
    """Why the held-out INT8 gate runs the graph at the deployment's batch (cpu.accuracy): quantize_dynamic
    computes one activation scale per call over the whole tensor, so a wide-ranged neighbour coarsens an image's
    quantisation; static scales are fixed at calibration."""
    from resvit_export.cpu.session import cpu_session

    image = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    wide = 50.0 * np.random.default_rng(2).standard_normal((1, 3, 16, 16)).astype(np.float32)
    calib = [np.random.default_rng(i).standard_normal((2, 3, 16, 16)).astype(np.float32) for i in range(3)]
    for form, depends in (("dynamic", True), ("static-qdq", False)):
        sess = cpu_session(quantize_cpu(src, tmp_path / f"{form}.onnx", form, calib).path, 1)
        alone = sess.run(None, {"pixels": image})[0][0]
        beside = sess.run(None, {"pixels": np.concatenate([image, wide])})[0][0]
        assert np.array_equal(alone, beside) != depends, form


@pytest.mark.parametrize("transposed", [False, True], ids=["weight", "transposed-weight"])
def test_the_dynamic_form_quantizes_matmuls_inside_if_branches(tmp_path, transposed):
    """Gated ViTAR keeps its ATM stages in If branches, some weights behind a Transpose there; left fp32 they
    dominated its INT8 graph at large sizes."""
    from resvit_export.cpu.session import cpu_session

    src = if_matmul(tmp_path / "if.onnx", transposed=transposed)
    g = quantize_cpu(src, tmp_path / "if.int8.onnx", "dynamic")
    (if_node,) = [n for n in onnx.load(str(g.path)).graph.node if n.op_type == "If"]
    branch = {a.name: [n.op_type for n in a.g.node] for a in if_node.attribute}
    assert "MatMul" not in branch["then_branch"] and "MatMulInteger" in branch["then_branch"], branch
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    sess = cpu_session(g.path, 1)
    taken = sess.run(None, {"cond": np.array(True), "x": x})[0]
    np.testing.assert_allclose(taken, np.tile(x.sum(1, keepdims=True), (1, 16)), atol=0.1)  # x @ ones(8, 16)
    skipped = sess.run(None, {"cond": np.array(False), "x": x})[0]
    assert np.array_equal(skipped, np.pad(x, ((0, 0), (0, 8))))  # the other branch: untouched fp32
