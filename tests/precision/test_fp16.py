"""FP16 ONNX: policy ops in FP32, float32 IO, dynamic H/W, ORT (child process) parity at three sizes."""

import onnx
import pytest
from onnx import TensorProto, helper

from resvit_export.errors import GraphRewriteError, UsageError
from resvit_export.precision.fp16 import (FP16_COSINE_MIN, _shape_path_nodes, dedupe_casts, make_fp16_onnx,
                                          toposort)

from .conftest import SIZES, elem_types

F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16


@pytest.fixture(scope="module")
def fp16(deit_onnx, tmp_path_factory):
    dst = tmp_path_factory.mktemp("fp16") / "model.fp16.onnx"
    return make_fp16_onnx(deit_onnx, dst, verify_sizes=SIZES)


def test_fp16_graph_types(fp16):
    m = onnx.load(fp16.path)
    onnx.checker.check_model(m)
    types = elem_types(m)
    # IO stays float32 (the pipeline feeds float32) and the H/W axes stay symbolic
    assert [types[i.name] for i in m.graph.input] == [F32] and [types[o.name] for o in m.graph.output] == [F32]
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims[2:]] == ["height", "width"] and dims[0].dim_param == "batch"
    # LayerNormalization and Softmax compute in fp32: every float input and output is FLOAT
    kept = [n for n in m.graph.node if n.op_type in ("LayerNormalization", "Softmax")]
    assert len(kept) == 7
    for n in kept:
        assert {types[t] for t in list(n.input) + list(n.output) if t} == {F32}, n.name
    # MatMuls compute in fp16, initializers are fp16 except the ones only kept nodes read
    mm = [n for n in m.graph.node if n.op_type == "MatMul"]
    assert mm and all(types[n.output[0]] == F16 for n in mm)
    kept_inputs = {t for n in kept for t in n.input}
    for init in m.graph.initializer:
        if init.data_type == F32:
            assert init.name in kept_inputs, init.name
    assert sum(i.data_type == F16 for i in m.graph.initializer) > 10
    assert set(fp16.kept_fp32_nodes) == {n.name for n in kept}
    assert fp16.node_counts["casts_added"] > 0 and len(fp16.sha256) == 64


def test_fp16_runs_at_three_sizes_close_to_fp32(fp16):
    assert [(p["h"], p["w"]) for p in fp16.parity] == list(SIZES)
    for p in fp16.parity:
        assert p["cosine"] > FP16_COSINE_MIN and p["top1_agree"] == 1.0, p


def test_keep_fp32_by_name_and_type(deit_onnx, tmp_path):
    src = onnx.load(str(deit_onnx), load_external_data=False)
    mm = next(n.name for n in src.graph.node if n.op_type == "MatMul")
    res = make_fp16_onnx(deit_onnx, tmp_path / "k.onnx", keep_fp32=f"{mm},Gemm", verify=False)
    m = onnx.load(res.path)
    types = elem_types(m)
    by_name = {n.name: n for n in m.graph.node}
    assert types[by_name[mm].output[0]] == F32
    gemm = next(n for n in m.graph.node if n.op_type == "Gemm")
    assert {types[t] for t in gemm.input if t} == {F32}
    assert mm in res.kept_fp32_nodes and "Gemm" in res.kept_ops


def test_bad_keep_name_is_usage_error(deit_onnx, tmp_path):
    with pytest.raises(UsageError) as err:
        make_fp16_onnx(deit_onnx, tmp_path / "x.onnx", keep_fp32="node_does_not_exist", verify=False)
    assert "node_" in str(err.value)  # lists real node names
    assert not (tmp_path / "x.onnx").exists()


def _cast(name, src, dst):
    return helper.make_node("Cast", [src], [dst], name=name, to=F32)


def test_dedupe_identical_casts_and_toposort():
    # what the converter emits when one tensor feeds two FP32-kept nodes: two Casts writing one name
    nodes = [helper.make_node("Relu", ["c"], ["y"], name="r"), _cast("c1", "x", "c"), _cast("c2", "x", "c")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F16, [2])],
                          [helper.make_tensor_value_info("y", F32, [2])])
    m = helper.make_model(g)
    assert dedupe_casts(m) == 1
    toposort(m)
    assert [n.name for n in m.graph.node] == ["c1", "r"]
    onnx.checker.check_model(m)
    bad = helper.make_model(helper.make_graph(
        [_cast("c1", "x", "c"), helper.make_node("Relu", ["x"], ["c"], name="r2")], "g",
        [helper.make_tensor_value_info("x", F16, [2])], [helper.make_tensor_value_info("c", F32, [2])]))
    with pytest.raises(GraphRewriteError):
        dedupe_casts(bad)


def test_shape_path_detection():
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Cast", ["s"], ["sf"], name="to_float", to=F32),
             helper.make_node("Div", ["sf", "two"], ["half"], name="div"),
             helper.make_node("Cast", ["half"], ["hi"], name="to_int", to=TensorProto.INT64),
             helper.make_node("Reshape", ["x", "hi"], ["y"], name="reshape")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F32, [4])],
                          [helper.make_tensor_value_info("y", F32, None)],
                          [helper.make_tensor("two", F32, [], [2.0])])
    assert _shape_path_nodes(g) == {"shape", "to_float", "div", "to_int"}


def test_ort_failure_in_child_is_invalid_artifact(tmp_path):
    from resvit_export.errors import InvalidArtifactError
    from resvit_export.precision.fp16 import run_isolated

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07not a model")
    with pytest.raises(InvalidArtifactError):
        run_isolated(bad, [{"pixels": __import__("numpy").zeros((1, 3, 32, 32), "float32")}])
