"""INT8 Q/DQ ONNX from multi-resolution calibration: placement, dynamic H/W, ORT (child) parity at 3 sizes."""

import onnx
import pytest

from resvit_export.errors import UsageError
from resvit_export.precision.int8 import INT8_COSINE_MIN, make_int8_onnx, qdq_summary

from .conftest import SIZES


@pytest.fixture(scope="module")
def int8(deit_onnx, calib_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8")
    return make_int8_onnx(deit_onnx, out / "model.int8.onnx", calib_set, method="entropy",
                          cache_dir=out / "cache", verify_sizes=SIZES)


def test_qdq_placement(int8):
    m = onnx.load(int8.path)
    onnx.checker.check_model(m)
    produced_by = {o: n for n in m.graph.node for o in n.output}

    def from_dq(t):
        return t in produced_by and produced_by[t].op_type == "DequantizeLinear"

    for n in m.graph.node:
        if n.op_type in ("MatMul", "Conv", "Gemm"):
            assert from_dq(n.input[0]) and from_dq(n.input[1]), n.name  # activation and weight both Q/DQ
        if n.op_type in ("LayerNormalization", "Softmax"):
            assert not any(from_dq(t) for t in n.input), n.name
    qs = [n for n in m.graph.node if n.op_type == "QuantizeLinear"]
    inits = {t.name: t for t in m.graph.initializer}
    for q in qs:  # symmetric int8: zero point 0, type INT8
        zp = onnx.numpy_helper.to_array(inits[q.input[2]])
        assert zp.dtype.name == "int8" and not zp.any()
    s = qdq_summary(m)
    assert s["QuantizeLinear"] > 0 and "LayerNormalization" not in s["dq_consumers"]


def test_int8_keeps_dynamic_axes_and_runs_at_three_sizes(int8):
    m = onnx.load(int8.path, load_external_data=False)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
    assert [(p["h"], p["w"]) for p in int8.parity] == list(SIZES)
    for p in int8.parity:
        # tiny random model: measured 0.9995-0.9999 (entropy); the gate is a floor against broken scales
        assert p["cosine"] > INT8_COSINE_MIN, p
    assert min(p["cosine"] for p in int8.parity) > 0.995
    assert int8.details["calibration"]["resolutions"] == [[96, 160], [224, 224], [320, 256]]


def test_int8_without_calibration_data(deit_onnx, tmp_path):
    with pytest.raises(UsageError, match="INT8 needs calibration data: pass --calib-data DIR or --calib-synthetic N"):
        make_int8_onnx(deit_onnx, tmp_path / "x.onnx", None)


def test_int8_keep_fp32_op_type_and_bad_method(deit_onnx, calib_set, tmp_path):
    res = make_int8_onnx(deit_onnx, tmp_path / "noconv.onnx", calib_set, method="minmax", keep_fp32="Conv",
                         cache_dir=tmp_path / "cache", verify=False)
    m = onnx.load(res.path)
    assert "Conv" not in qdq_summary(m)["dq_consumers"] and "Conv" in res.kept_ops
    with pytest.raises(UsageError):
        make_int8_onnx(deit_onnx, tmp_path / "y.onnx", calib_set, method="kl", verify=False)
