"""INT8 Q/DQ ONNX: what the conversion must do, independent of how well random weights quantize.

Asserted: Q/DQ sits only around MatMul/Gemm/Conv, the dynamic axes survive, the graph runs at every corner of
the export range, and the drift gate raises on a graph that drifts by construction (a corrupted scale) while
passing one that provably does not. No assertion depends on the cosine a random-init model happens to reach
after quantization (that moved with onnxruntime releases: issue #7).
"""

import numpy as np
import onnx
import pytest

from resvit_export.errors import ParityError, UsageError
from resvit_export.precision.fp16 import check_drift, verify_against_reference
from resvit_export.precision.int8 import INT8_COSINE_MIN, make_int8_onnx, qdq_summary

from .conftest import SIZES

QUANTIZED_OPS = {"MatMul", "Gemm", "Conv"}
# Shape reads only the dimensions of its input, never the values, so a DequantizeLinear feeding it is harmless.
VALUE_BLIND_OPS = {"Shape"}
# Corners of the export range in tests/precision/conftest.py (batch 1-8, H and W 32-1024), plus off-grid sizes.
RANGE_CASES = ((1, 32, 32), (1, 1024, 1024), (1, 32, 1024), (1, 1024, 32), (8, 64, 64), (2, 97, 301))


@pytest.fixture(scope="module")
def int8(deit_onnx, calib_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8")
    return make_int8_onnx(deit_onnx, out / "model.int8.onnx", calib_set, method="entropy",
                          cache_dir=out / "cache", verify=False)


def test_qdq_only_around_matmul_gemm_conv(int8):
    m = onnx.load(int8.path)
    onnx.checker.check_model(m)
    produced_by = {o: n for n in m.graph.node for o in n.output}

    def from_dq(t):
        return t in produced_by and produced_by[t].op_type == "DequantizeLinear"

    quantized = [n for n in m.graph.node if n.op_type in QUANTIZED_OPS and n.name not in int8.kept_fp32_nodes]
    assert quantized and int8.details["policy"] == "weighted"  # the default: attention MatMuls stay float
    for n in quantized:
        assert from_dq(n.input[0]) and from_dq(n.input[1]), n.name  # activation and weight both Q/DQ
    s = qdq_summary(m)
    assert set(s["dq_consumers"]) <= QUANTIZED_OPS | VALUE_BLIND_OPS, s["dq_consumers"]
    inits = {t.name: t for t in m.graph.initializer}
    for q in (n for n in m.graph.node if n.op_type == "QuantizeLinear"):  # symmetric int8: zero point 0
        zp = onnx.numpy_helper.to_array(inits[q.input[2]])
        assert zp.dtype.name == "int8" and not zp.any()
    assert int8.details["calibration"]["resolutions"] == [[96, 160], [224, 224], [320, 256]]


def test_int8_keeps_dynamic_axes_and_runs_over_the_range(int8):
    import onnxruntime as ort

    m = onnx.load(int8.path, load_external_data=False)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
    sess = ort.InferenceSession(int8.path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for b, h, w in RANGE_CASES:
        (logits,) = sess.run(None, {"pixels": rng.standard_normal((b, 3, h, w), dtype=np.float32)})
        assert logits.shape == (b, 10) and np.isfinite(logits).all(), (b, h, w)  # deit_test: 10 classes


def _negated_head(int8_path, dst):
    """The INT8 graph with the head's weight scale and bias negated: its logits are exactly -1 x the original
    (negation commutes with every rounding step), so its cosine against the original is -1 at every size."""
    m = onnx.load(str(int8_path))
    inits = {t.name: t for t in m.graph.initializer}
    for name in ("head.weight_scale", "head.bias"):
        inits[name].CopyFrom(onnx.numpy_helper.from_array(-onnx.numpy_helper.to_array(inits[name]), name))
    onnx.save(m, str(dst))
    return dst


def test_drift_gate_raises_on_a_corrupted_scale_and_passes_an_identical_graph(int8, tmp_path):
    corrupted = _negated_head(int8.path, tmp_path / "corrupted.int8.onnx")
    rows = verify_against_reference(int8.path, corrupted, SIZES)
    assert [r["cosine"] for r in rows] == pytest.approx([-1.0] * len(SIZES), abs=1e-6)
    with pytest.raises(ParityError, match=r"INT8 graph drifts from FP32 at \d+x\d+: cosine -1\.0"):
        check_drift(rows, INT8_COSINE_MIN, "INT8", "hint")
    same = verify_against_reference(int8.path, int8.path, SIZES)
    assert [r["cosine"] for r in same] == pytest.approx([1.0] * len(SIZES), abs=1e-6)
    check_drift(same, INT8_COSINE_MIN, "INT8", "hint")  # does not raise


def test_int8_without_calibration_data(deit_onnx, tmp_path):
    with pytest.raises(UsageError, match="INT8 needs calibration data: pass --calib-data DIR or --calib-synthetic N"):
        make_int8_onnx(deit_onnx, tmp_path / "x.onnx", None)
    assert not (tmp_path / "x.onnx").exists()


def test_int8_keep_fp32_op_type_and_bad_method(deit_onnx, calib_set, tmp_path):
    res = make_int8_onnx(deit_onnx, tmp_path / "noconv.onnx", calib_set, method="minmax", keep_fp32="Conv",
                         cache_dir=tmp_path / "cache", verify=False)
    m = onnx.load(res.path)
    assert "Conv" not in qdq_summary(m)["dq_consumers"] and "Conv" in res.kept_ops
    with pytest.raises(UsageError):
        make_int8_onnx(deit_onnx, tmp_path / "y.onnx", calib_set, method="kl", verify=False)


def test_node_roles_and_the_weighted_policy(deit_onnx, calib_set, tmp_path):
    """Roles come from the graph's wiring (a weight input, a Softmax input), and the "weighted" policy leaves
    exactly the two attention MatMuls per block in float while every weighted MatMul/Gemm/Conv gets Q/DQ."""
    from resvit_export.precision.int8 import node_roles

    depth = 2  # deit_test
    roles = node_roles(deit_onnx)
    assert {k: len(v) for k, v in roles.items()} == {"linear": 4 * depth + 1, "conv": 1, "attn_scores": depth,
                                                      "attn_values": depth}
    res = make_int8_onnx(deit_onnx, tmp_path / "w.onnx", calib_set, cache_dir=tmp_path / "cache", verify=False,
                         policy="weighted")
    m = onnx.load(res.path)
    produced_by = {o: n for n in m.graph.node for o in n.output}
    dq_fed = {n.name for n in m.graph.node if n.op_type in QUANTIZED_OPS
              if any(i in produced_by and produced_by[i].op_type == "DequantizeLinear" for i in n.input[:2])}
    assert dq_fed == set(roles["linear"]) | set(roles["conv"])
    assert set(res.kept_fp32_nodes) >= set(roles["attn_scores"]) | set(roles["attn_values"])
    with pytest.raises(UsageError, match="unknown INT8 policy 'bogus'"):
        make_int8_onnx(deit_onnx, tmp_path / "b.onnx", calib_set, verify=False, policy="bogus")
    assert not (tmp_path / "b.onnx").exists()
