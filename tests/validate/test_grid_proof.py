"""The same-grid proof on hand-built graphs: it holds only when pixels and sizes reach the graph through the grid."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from resvit_export.validate.grid_proof import prove_patch_grid_input


def _graph(tmp_path, *, kernel=16, stride=16, size_divisor=16, size_via=None, pixel_op=None, shape_end=3):
    """pixels -> [pixel_op] -> Conv -> ReduceMean; + Shape(pixels)[2:shape_end] -> Squeeze -> Div -> added in."""
    inits = [numpy_helper.from_array(np.ones((8, 3, kernel, kernel), np.float32), "w"),
             numpy_helper.from_array(np.array(size_divisor, np.int64), "p"),
             numpy_helper.from_array(np.array([2, 3], np.int64), "hw_axes")]
    nodes, src = [], "pixels"
    if pixel_op == "cast":
        nodes.append(helper.make_node("Cast", ["pixels"], ["px16"], to=TensorProto.FLOAT))
        src = "px16"
    elif pixel_op == "resize":
        inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"))
        nodes.append(helper.make_node("Resize", ["pixels", "", "scales"], ["px_up"]))
        src = "px_up"
    elif pixel_op == "per_position_scale":
        inits.append(numpy_helper.from_array(np.ones((1, 1, 64, 64), np.float32), "table"))
        nodes.append(helper.make_node("Mul", ["pixels", "table"], ["px_scaled"]))
        src = "px_scaled"
    nodes += [helper.make_node("Conv", [src, "w"], ["feat"], kernel_shape=[kernel, kernel], strides=[stride, stride]),
              helper.make_node("ReduceMean", ["feat", "hw_axes"], ["pooled"], keepdims=0),
              helper.make_node("Shape", ["pixels"], ["h_vec"], start=shape_end - 1 if shape_end > 1 else 0,
                               end=shape_end)]
    size = "h_vec"
    if size_via == "div":
        nodes += [helper.make_node("Squeeze", ["h_vec"], ["h"]), helper.make_node("Div", ["h", "p"], ["gh"])]
        size = "gh"
    nodes += [helper.make_node("Cast", [size], ["size_f"], to=TensorProto.FLOAT),
              helper.make_node("Add", ["pooled", "size_f"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT,
                                                                         ["b", 3, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return path


def test_patch_conv_and_floor_divided_size_prove_it(tmp_path):
    proof = prove_patch_grid_input(_graph(tmp_path, size_via="div"), 16)
    assert proof.holds and "floor(size/16)" in proof.reason
    # an elementwise cast in front of the Conv (the FP16 graph's input Cast) keeps it
    assert prove_patch_grid_input(_graph(tmp_path, size_via="div", pixel_op="cast"), 16).holds
    # a Shape that reads only the batch dimension is harmless
    assert prove_patch_grid_input(_graph(tmp_path, shape_end=1), 16).holds


@pytest.mark.parametrize("kwargs,needle", [
    (dict(size_via="div", pixel_op="resize"), "Resize"),
    (dict(size_via="div", pixel_op="per_position_scale"), "Mul"),
    (dict(size_via="div", kernel=16, stride=8), "stride [8, 8]"),
    (dict(size_via="div", size_divisor=8), "divided by 8"),
    (dict(size_via=None), "reaches Cast"),  # the raw height is used before any division
])
def test_anything_else_breaks_the_proof_and_names_why(tmp_path, kwargs, needle):
    proof = prove_patch_grid_input(_graph(tmp_path, **kwargs), 16)
    assert not proof.holds and needle in proof.reason
