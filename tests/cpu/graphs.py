"""Tiny hand-built ONNX graphs for the CPU-path tests (milliseconds to make and run; no export)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as oh
from onnx import numpy_helper


def _save(graph, path, opset=18):
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def mlp(path, width: int = 64, depth: int = 1, classes: int = 10, extra_matmuls: int = 0, flip: bool = False):
    """pixels [b, 3, h, w] -> mean over space -> (Linear, ReLU) x depth -> Linear -> logits [b, classes].

    ``extra_matmuls`` square MatMuls on [b, h*w, 3]-derived features do useless work (a slower equal graph);
    ``flip`` negates the logits (a wrong graph). Weights are fixed numbers (seeded), not a model under test.
    """
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    nodes.append(oh.make_node("ReduceMean", ["pixels", "axes_hw"], ["pooled4"], keepdims=0))
    inits.append(numpy_helper.from_array(np.array([2, 3], np.int64), "axes_hw"))
    nodes.append(oh.make_node("MatMul", ["pooled4", "w_in"], ["h0"]))
    inits.append(numpy_helper.from_array(rng.standard_normal((3, width)).astype(np.float32), "w_in"))
    cur = "h0"
    for i in range(depth):
        inits.append(numpy_helper.from_array((rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32),
                                             f"w{i}"))
        nodes += [oh.make_node("MatMul", [cur, f"w{i}"], [f"m{i}"]), oh.make_node("Relu", [f"m{i}"], [f"r{i}"])]
        cur = f"r{i}"
    if extra_matmuls:
        # [b, 3, h, w] -> [b, h*w, 3] @ [3, 256] -> chain of [256, 256] MatMuls -> reduced to a zero added to logits
        inits.append(numpy_helper.from_array(np.array([0, 3, -1], np.int64), "shape3"))
        inits.append(numpy_helper.from_array(np.ones((3, 256), np.float32), "wx"))
        inits.append(numpy_helper.from_array(np.zeros((256, 256), np.float32), "wz"))
        nodes += [oh.make_node("Reshape", ["pixels", "shape3"], ["flat"]),
                  oh.make_node("Transpose", ["flat"], ["tok"], perm=[0, 2, 1]),
                  oh.make_node("MatMul", ["tok", "wx"], ["e0"])]
        for k in range(extra_matmuls):
            nodes.append(oh.make_node("MatMul", [f"e{k}", "wz"], [f"e{k + 1}"]))
        nodes.append(oh.make_node("ReduceSum", [f"e{extra_matmuls}", "axes_all"], ["zero"], keepdims=0))
        inits.append(numpy_helper.from_array(np.array([1, 2], np.int64), "axes_all"))
        nodes.append(oh.make_node("Unsqueeze", ["zero", "axis1"], ["zero2"]))
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
        nodes.append(oh.make_node("Add", [cur, "zero2"], ["plus"]))
        cur = "plus"
    inits.append(numpy_helper.from_array(rng.standard_normal((width, classes)).astype(np.float32), "w_out"))
    nodes.append(oh.make_node("MatMul", [cur, "w_out"], ["out" if flip else "logits"]))
    if flip:
        nodes.append(oh.make_node("Neg", ["out"], ["logits"]))
    graph = oh.make_graph(nodes, "mlp", [oh.make_tensor_value_info("pixels", TP.FLOAT, ["b", 3, "h", "w"])],
                          [oh.make_tensor_value_info("logits", TP.FLOAT, ["b", classes])], initializer=inits)
    return _save(graph, path)


def if_matmul(path, k: int = 8, n: int = 16, transposed: bool = False):
    """y = If(cond, x @ W (then), x (else... padded to n by a zero MatMul-free Pad)) on x [m, k]: only the taken
    branch's MatMul should count. ``transposed``: W is stored [n, k] and transposed inside the branch, as the
    dynamo export writes a Linear inside a torch.cond branch."""
    w = numpy_helper.from_array(np.ones((n, k) if transposed else (k, n), np.float32), "W")
    weight = [oh.make_node("Transpose", ["W"], ["W_t"], perm=[1, 0])] if transposed else []
    then_g = oh.make_graph(weight + [oh.make_node("MatMul", ["x", "W_t" if transposed else "W"], ["then_y"])],
                           "then", [], [oh.make_tensor_value_info("then_y", TP.FLOAT, ["m", n])])
    pads = numpy_helper.from_array(np.array([0, 0, 0, n - k], np.int64), "pads")
    else_g = oh.make_graph([oh.make_node("Pad", ["x", "pads"], ["else_y"])], "else", [],
                           [oh.make_tensor_value_info("else_y", TP.FLOAT, ["m", n])])
    node = oh.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g)
    graph = oh.make_graph([node], "g", [oh.make_tensor_value_info("cond", TP.BOOL, []),
                                        oh.make_tensor_value_info("x", TP.FLOAT, ["m", k])],
                          [oh.make_tensor_value_info("y", TP.FLOAT, ["m", n])], initializer=[w, pads])
    return _save(graph, path)


def attention(path, heads: int = 2, dim: int = 8, scale_after: float | None = None, bias: bool = False):
    """x [b, n, heads*dim] -> q, k, v projections -> explicit attention as the dynamo export writes it -> [b, n, C].

    ``scale_after``: a scalar Mul between the scores MatMul and Softmax (else the scale is pre-folded into q);
    ``bias``: an Add of a constant to the scores (a pattern the fusion must leave alone).
    """
    rng = np.random.default_rng(0)
    c = heads * dim
    inits = [numpy_helper.from_array((rng.standard_normal((c, c)) / np.sqrt(c)).astype(np.float32), f"w{t}")
             for t in "qkv"]
    inits += [numpy_helper.from_array(np.array([0, 0, heads, dim], np.int64), "split_heads"),
              numpy_helper.from_array(np.array([0, 0, c], np.int64), "merge_heads")]
    nodes = []
    for t in "qkv":
        nodes += [oh.make_node("MatMul", ["x", f"w{t}"], [f"{t}2"]),
                  oh.make_node("Reshape", [f"{t}2", "split_heads"], [f"{t}4"]),
                  oh.make_node("Transpose", [f"{t}4"], [f"{t}h"], perm=[0, 2, 1, 3])]
    nodes.append(oh.make_node("Transpose", ["kh"], ["kt"], perm=[0, 1, 3, 2]))
    nodes.append(oh.make_node("MatMul", ["qh", "kt"], ["scores0"]))
    cur = "scores0"
    if scale_after is not None:
        inits.append(numpy_helper.from_array(np.array(scale_after, np.float32), "s"))
        nodes.append(oh.make_node("Mul", [cur, "s"], ["scores1"]))
        cur = "scores1"
    if bias:
        inits.append(numpy_helper.from_array(np.float32(0.5) * np.ones((1, 1, 1, 1), np.float32), "b"))
        nodes.append(oh.make_node("Add", [cur, "b"], ["scores2"]))
        cur = "scores2"
    nodes += [oh.make_node("Softmax", [cur], ["probs"], axis=-1),
              oh.make_node("MatMul", ["probs", "vh"], ["ctx"]),
              oh.make_node("Transpose", ["ctx"], ["ctx_t"], perm=[0, 2, 1, 3]),
              oh.make_node("Reshape", ["ctx_t", "merge_heads"], ["y"])]
    graph = oh.make_graph(nodes, "attn", [oh.make_tensor_value_info("x", TP.FLOAT, ["b", "n", c])],
                          [oh.make_tensor_value_info("y", TP.FLOAT, ["b", "n", c])], initializer=inits)
    return _save(graph, path)
