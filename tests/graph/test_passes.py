"""Each rewrite pass on a hand-built onnx-graphsurgeon graph: one case it must rewrite, one it must leave alone."""

from __future__ import annotations

import numpy as np
import pytest

gs = pytest.importorskip("onnx_graphsurgeon")
ort = pytest.importorskip("onnxruntime")

from resvit_export.graph import passes  # noqa: E402
from resvit_export.graph.rewrite import RewriteContext  # noqa: E402
from resvit_export.profiles import ResolutionProfile  # noqa: E402

F32 = np.float32


def _ctx(min_side=32, max_side=64, target=None):
    return RewriteContext(ResolutionProfile((min_side, min_side), (max_side, max_side)), patch_size=16, target=target,
                          check_shapes=((1, min_side, min_side),))


def _graph(nodes, inputs, outputs, opset=18):
    return gs.Graph(nodes=nodes, inputs=inputs, outputs=outputs, opset=opset)


def _run(graph, feeds):
    model = gs.export_onnx(graph.copy())
    model.ir_version = 9
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _ops(graph):
    return [n.op for n in graph.nodes]


# fold_constants -------------------------------------------------------------------------------------------------
def test_fold_constants_folds_constant_subgraph():
    x = gs.Variable("x", F32, (2, 3))
    c = gs.Variable("c", F32, (1,))
    y = gs.Variable("y", F32, (2, 3))
    g = _graph([gs.Node("Add", "add_c", inputs=[gs.Constant("a", np.ones(1, F32)), gs.Constant("b", np.ones(1, F32))],
                        outputs=[c]),
                gs.Node("Mul", "mul", inputs=[x, c], outputs=[y])], [x], [y])
    feed = {"x": np.arange(6, dtype=F32).reshape(2, 3)}
    before = _run(g, feed)
    res = passes.fold_constants(g, _ctx())
    assert res.changed and _ops(g) == ["Mul"]
    np.testing.assert_array_equal(_run(g, feed)[0], before[0])


def test_fold_constants_leaves_dynamic_graph():
    x = gs.Variable("x", F32, (2, 3))
    y = gs.Variable("y", F32, (2, 3))
    g = _graph([gs.Node("Relu", "relu", inputs=[x], outputs=[y])], [x], [y])
    assert not passes.fold_constants(g, _ctx()).changed and _ops(g) == ["Relu"]


# resize_antialias -------------------------------------------------------------------------------------------------
def _resize_graph(table_hw=2, scales=None):
    """Resize(table, sizes=Shape(x)) + x: the pos-embed pattern (a constant table resized to the token grid)."""
    x = gs.Variable("x", F32, (1, 4, "h", "w"))
    table = gs.Constant("table", np.random.default_rng(0).standard_normal((1, 4, table_hw, table_hw)).astype(F32))
    y = gs.Variable("y", F32, (1, 4, "h", "w"))
    r = gs.Variable("r", F32, None)
    attrs = {"mode": "cubic", "antialias": 1, "cubic_coeff_a": -0.5, "exclude_outside": 1}
    if scales is not None:
        resize = gs.Node("Resize", "resize", attrs=attrs,
                         inputs=[table, gs.Variable.empty(), gs.Constant("scales", np.array(scales, F32))], outputs=[r])
        return _graph([resize], [], [r]), None
    shp = gs.Variable("shp", np.int64, (4,))
    nodes = [gs.Node("Shape", "shape", inputs=[x], outputs=[shp]),
             gs.Node("Resize", "resize", attrs=attrs, inputs=[table, gs.Variable.empty(), gs.Variable.empty(), shp],
                     outputs=[r]),
             gs.Node("Add", "add", inputs=[x, r], outputs=[y])]
    return _graph(nodes, [x], [y]), y


def test_resize_antialias_dropped_when_profile_only_upsamples():
    g, _ = _resize_graph(table_hw=2)
    feed = {"x": np.zeros((1, 4, 5, 3), F32)}
    before = _run(g, feed)
    res = passes.resize_antialias(g, _ctx(min_side=32))  # min grid 2x2 >= table 2x2
    node = next(n for n in g.nodes if n.op == "Resize")
    assert res.changed and not res.flags and node.attrs["antialias"] == 0
    np.testing.assert_allclose(_run(g, feed)[0], before[0], atol=1e-6)


def test_resize_antialias_kept_and_flagged_when_profile_downsamples():
    g, _ = _resize_graph(table_hw=4)
    res = passes.resize_antialias(g, _ctx(min_side=32))  # min grid 2x2 < table 4x4
    node = next(n for n in g.nodes if n.op == "Resize")
    assert not res.changed and res.flags and "not exact" in res.flags[0] and node.attrs["antialias"] == 1


def test_resize_antialias_constant_scales():
    g, _ = _resize_graph(scales=[1, 1, 0.5, 0.5])
    assert passes.resize_antialias(g, _ctx()).flags
    g, _ = _resize_graph(scales=[1, 1, 2, 2])
    assert passes.resize_antialias(g, _ctx()).changed


# prescale_q -------------------------------------------------------------------------------------------------------
def _attn_graph(form):
    """q,k,v [1,2,5,4]; form 'both': Mul(q,s) @ Mul(kT,s); 'post': Div(q@kT, c); 'linear': no softmax."""
    q, kt, v = gs.Variable("q", F32, (1, 2, 5, 4)), gs.Variable("kt", F32, (1, 2, 4, 5)), gs.Variable("v", F32,
                                                                                                   (1, 2, 5, 4))
    s = gs.Constant("s", np.array(0.5, F32))
    qs, ks, qk, p, out = (gs.Variable(n, F32) for n in ("qs", "ks", "qk", "p", "out"))
    if form in ("both", "linear"):
        nodes = [gs.Node("Mul", "mul_q", inputs=[q, s], outputs=[qs]), gs.Node("Mul", "mul_k", inputs=[kt, s],
                                                                                 outputs=[ks]),
                 gs.Node("MatMul", "qk", inputs=[qs, ks], outputs=[qk])]
        if form == "linear":
            return _graph(nodes, [q, kt], [qk])
        nodes += [gs.Node("Softmax", "sm", attrs={"axis": -1}, inputs=[qk], outputs=[p])]
    else:
        d = gs.Variable("d", F32)
        nodes = [gs.Node("MatMul", "qk", inputs=[q, kt], outputs=[qk]),
                 gs.Node("Div", "div", inputs=[qk, gs.Constant("c", np.array(2.0, F32))], outputs=[d]),
                 gs.Node("Softmax", "sm", attrs={"axis": -1}, inputs=[d], outputs=[p])]
    nodes.append(gs.Node("MatMul", "pv", inputs=[p, v], outputs=[out]))
    return _graph(nodes, [q, kt, v], [out])


def _attn_feed(names=("q", "kt", "v")):
    rng = np.random.default_rng(1)
    shapes = {"q": (1, 2, 5, 4), "kt": (1, 2, 4, 5), "v": (1, 2, 5, 4)}
    return {n: rng.standard_normal(shapes[n]).astype(F32) for n in names}


@pytest.mark.parametrize("form", ["both", "post"])
def test_prescale_q_moves_scale_onto_q(form):
    g = _attn_graph(form)
    feed = _attn_feed()
    before = _run(g, feed)
    res = passes.prescale_q(g, _ctx())
    assert res.changed
    qk = next(n for n in g.nodes if n.name == "qk")
    assert qk.inputs[1].name == "kt"  # K reaches the MatMul unscaled
    q_mul = qk.inputs[0].inputs[0]
    assert q_mul.op == "Mul" and float(q_mul.inputs[1].values) == pytest.approx(0.25 if form == "both" else 0.5)
    assert "Div" not in _ops(g) and _ops(g).count("Mul") == 1
    np.testing.assert_allclose(_run(g, feed)[0], before[0], rtol=1e-6, atol=1e-6)


def test_prescale_q_ignores_matmul_without_softmax_and_q_only_scale():
    g = _attn_graph("linear")
    assert not passes.prescale_q(g, _ctx()).changed and _ops(g).count("Mul") == 2
    g = _attn_graph("both")
    passes.prescale_q(g, _ctx())
    again = passes.prescale_q(g, _ctx())  # idempotent: the scale already sits on Q only
    assert not again.changed and "already" in again.notes[0]


# drop_casts -------------------------------------------------------------------------------------------------------
def _cast(name, x, to, out_dtype):
    y = gs.Variable(f"{name}_out", out_dtype)
    return gs.Node("Cast", name, attrs={"to": to}, inputs=[x], outputs=[y]), y


def test_drop_casts_removes_identity_same_type_and_round_trip():
    import onnx

    x = gs.Variable("x", F32, (3,))
    n1, a = _cast("same", x, onnx.TensorProto.FLOAT, F32)
    ident = gs.Variable("ident", F32)
    n2 = gs.Node("Identity", "id", inputs=[a], outputs=[ident])
    n3, b = _cast("up", ident, onnx.TensorProto.DOUBLE, np.float64)
    n4, c = _cast("down", b, onnx.TensorProto.FLOAT, F32)
    y = gs.Variable("y", F32, (3,))
    g = _graph([n1, n2, n3, n4, gs.Node("Relu", "relu", inputs=[c], outputs=[y])], [x], [y])
    feed = {"x": np.array([-1.0, 0.5, 2.0], F32)}
    before = _run(g, feed)
    res = passes.drop_casts(g, _ctx())
    assert _ops(g) == ["Relu"], res.changes
    np.testing.assert_array_equal(_run(g, feed)[0], before[0])


def test_drop_casts_keeps_lossy_chain():
    import onnx

    x = gs.Variable("x", F32, (3,))
    n1, a = _cast("to_half", x, onnx.TensorProto.FLOAT16, np.float16)
    n2, y = _cast("to_float", a, onnx.TensorProto.FLOAT, F32)
    g = _graph([n1, n2], [x], [y])
    assert not passes.drop_casts(g, _ctx()).changed and _ops(g) == ["Cast", "Cast"]
    x2, y2 = gs.Variable("x2", F32, (3,)), gs.Variable("y2", F32, (3,))
    g = _graph([gs.Node("Identity", "id", inputs=[x2], outputs=[y2])], [x2], [y2])  # input -> output: must stay
    assert not passes.drop_casts(g, _ctx()).changed and _ops(g) == ["Identity"]


# layernorm --------------------------------------------------------------------------------------------------------
def _decomposed_ln(axis=-1, opset=18):
    x = gs.Variable("x", F32, (2, 3, 8))
    ax = gs.Constant("axes", np.array([axis], np.int64))
    t = {n: gs.Variable(n, F32) for n in ("m", "d", "p", "v", "ve", "s", "n", "g", "y")}
    rng = np.random.default_rng(2)
    gamma = gs.Constant("gamma", rng.standard_normal(8).astype(F32))
    beta = gs.Constant("beta", rng.standard_normal(8).astype(F32))
    nodes = [gs.Node("ReduceMean", "rm1", inputs=[x, ax], outputs=[t["m"]]),
             gs.Node("Sub", "sub", inputs=[x, t["m"]], outputs=[t["d"]]),
             gs.Node("Pow", "pow", inputs=[t["d"], gs.Constant("two", np.array(2.0, F32))], outputs=[t["p"]]),
             gs.Node("ReduceMean", "rm2", inputs=[t["p"], ax], outputs=[t["v"]]),
             gs.Node("Add", "add_eps", inputs=[t["v"], gs.Constant("eps", np.array(1e-6, F32))], outputs=[t["ve"]]),
             gs.Node("Sqrt", "sqrt", inputs=[t["ve"]], outputs=[t["s"]]),
             gs.Node("Div", "div", inputs=[t["d"], t["s"]], outputs=[t["n"]]),
             gs.Node("Mul", "mul_g", inputs=[t["n"], gamma], outputs=[t["g"]]),
             gs.Node("Add", "add_b", inputs=[t["g"], beta], outputs=[t["y"]])]
    return _graph(nodes, [x], [t["y"]], opset=opset)


def test_layernorm_fuses_decomposed_pattern():
    g = _decomposed_ln()
    feed = {"x": np.random.default_rng(3).standard_normal((2, 3, 8)).astype(F32)}
    before = _run(g, feed)
    res = passes.layernorm(g, _ctx())
    assert _ops(g) == ["LayerNormalization"] and res.changed
    assert g.nodes[0].attrs["epsilon"] == pytest.approx(1e-6)
    np.testing.assert_allclose(_run(g, feed)[0], before[0], rtol=1e-5, atol=1e-5)


def test_layernorm_leaves_non_last_axis_and_jetpack5():
    g = _decomposed_ln(axis=1)
    assert not passes.layernorm(g, _ctx()).changed and "LayerNormalization" not in _ops(g)
    g = _decomposed_ln()
    res = passes.layernorm(g, _ctx(target="jetpack5"))
    assert not res.changed and any("jetpack5" in f for f in res.flags)
    g = _decomposed_ln(opset=16)
    assert any("opset 16" in f for f in passes.layernorm(g, _ctx()).flags)
