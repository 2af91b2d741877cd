import onnx
import pytest
from onnx import helper

from resvit_export.errors import UsageError
from resvit_export.precision.policy import (DEFAULT_FP32_OPS, parse_keep_fp32, resolve_keep_fp32,
                                            resolve_precision)


@pytest.mark.parametrize("args, expected", [
    ((None, False, False), "fp32"), (("fp16", False, False), "fp16"), ((None, True, False), "fp16"),
    ((None, False, True), "int8"), (("int8", False, True), "int8"), (("FP16", True, False), "fp16"),
])
def test_resolve_precision(args, expected):
    assert resolve_precision(*args) == expected


@pytest.mark.parametrize("args", [(None, True, True), ("fp16", False, True), ("int8", True, False),
                                  ("fp32", True, False), ("bf17", False, False)])
def test_conflicting_or_unknown_precision_is_refused(args):
    with pytest.raises(UsageError):
        resolve_precision(*args)


def test_parse_keep_fp32():
    assert parse_keep_fp32(None) == []
    assert parse_keep_fp32("a, b,,c") == ["a", "b", "c"]
    assert parse_keep_fp32(["a,b", "Softmax"]) == ["a", "b", "Softmax"]


def _graph():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm0"),
             helper.make_node("Softmax", ["y"], ["z"], name="sm0"),
             helper.make_node("Relu", ["z"], ["out"], name="relu0")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 2])],
                          [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [2, 2])],
                          [helper.make_tensor("w", onnx.TensorProto.FLOAT, [2, 2], [1, 0, 0, 1])])
    return helper.make_model(g)


def test_keep_fp32_names_and_types():
    m = _graph()
    p = resolve_keep_fp32(m, "mm0,Relu")
    assert p.keep_nodes == ("mm0",) and p.extra_ops == ("Relu",)
    assert set(p.keep_ops) == set(DEFAULT_FP32_OPS)
    assert p.nodes_to_keep(m.graph) == ["mm0", "sm0", "relu0"]


def test_unknown_keep_name_lists_real_names():
    with pytest.raises(UsageError) as err:
        resolve_keep_fp32(_graph(), ["mm1"])
    assert "mm0" in str(err.value) and "op types present" in str(err.value)
