"""Every lint rule on a graph that violates it and one that does not; the op tables; the ``lint`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto as TP  # noqa: E402
from onnx import helper as oh  # noqa: E402

from resvit_export.errors import InvalidArtifactError, UsageError  # noqa: E402
from resvit_export.graph.lint import lint_onnx  # noqa: E402
from resvit_export.graph.rules import RULES  # noqa: E402
from resvit_export.graph.trt_ops import TARGETS  # noqa: E402


def _model(nodes, inputs, outputs, opset=18, inits=(), value_info=()):
    g = oh.make_graph(nodes, "g", inputs, outputs, initializer=list(inits), value_info=list(value_info))
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", opset)], ir_version=9)


def _vi(name, shape, et=TP.FLOAT):
    return oh.make_tensor_value_info(name, et, shape)


def _unary(op="Relu", opset=18, et=TP.FLOAT, **attrs):
    return _model([oh.make_node(op, ["x"], ["y"], name=f"n_{op}", **attrs)], [_vi("x", [2, 3], et)],
                  [_vi("y", [2, 3], et)], opset=opset)


def _resize(**attrs):
    attrs = {"mode": "linear", **attrs}
    table = oh.make_tensor("t", TP.FLOAT, [1, 1, 2, 2], [0.0, 1.0, 2.0, 3.0])
    sizes = oh.make_tensor("sizes", TP.INT64, [4], [1, 1, 4, 4])
    return _model([oh.make_node("Resize", ["t", "", "", "sizes"], ["y"], name="rs", **attrs)], [],
                  [_vi("y", [1, 1, 4, 4])], inits=[table, sizes])


def _resize_scales(scales, mode="cubic"):
    table = oh.make_tensor("t", TP.FLOAT, [1, 1, 2, 2], [0.0, 1.0, 2.0, 3.0])
    sc = oh.make_tensor("scales", TP.FLOAT, [4], scales)
    return _model([oh.make_node("Resize", ["t", "", "scales"], ["y"], name="rs", mode=mode)], [],
                  [_vi("y", None)], inits=[table, sc])


def _axes_op(op, computed):
    """``op`` (Unsqueeze/Squeeze/ReduceMean) whose axes are an initializer, or computed from the input's shape."""
    x = _vi("x", [1, 3])
    if computed:
        nodes = [oh.make_node("Shape", ["x"], ["s"]), oh.make_node("Slice", ["s", "zero", "one"], ["a"])]
        inits = [oh.make_tensor("zero", TP.INT64, [1], [0]), oh.make_tensor("one", TP.INT64, [1], [1])]
    else:
        nodes, inits = [], [oh.make_tensor("a", TP.INT64, [1], [0])]
    nodes.append(oh.make_node(op, ["x", "a"], ["y"], name=f"n_{op}"))
    return _model(nodes, [x], [_vi("y", None)], inits=inits)


def _if(same_shape=True, same_rank=True, constant_cond=False):
    then_shape = [2, 3]
    else_shape = [2, 3] if same_shape else ([4, 3] if same_rank else [6])

    def branch(name, shape):
        c = oh.make_tensor(f"{name}_c", TP.FLOAT, shape, np.zeros(shape).reshape(-1).tolist())
        return oh.make_graph([oh.make_node("Constant", [], [f"{name}_o"], value=c)], name, [],
                             [_vi(f"{name}_o", shape)])

    node = oh.make_node("If", ["cond"], ["y"], name="the_if", then_branch=branch("then", then_shape),
                        else_branch=branch("else", else_shape))
    if constant_cond:  # the parser imports only the taken branch
        return _model([node], [], [_vi("y", None)], inits=[oh.make_tensor("cond", TP.BOOL, [], [True])])
    return _model([node], [_vi("cond", [], TP.BOOL)], [_vi("y", None)])


def _if_runtime_shape():
    """An If on a run-time condition whose branches return a tensor of run-time shape (ViTAR's gated ATM)."""
    x = _vi("x", ["n"])
    then_g = oh.make_graph([oh.make_node("Relu", ["x"], ["then_o"])], "then", [], [_vi("then_o", ["n"])])
    else_g = oh.make_graph([oh.make_node("Identity", ["x"], ["else_o"])], "else", [], [_vi("else_o", ["n"])])
    node = oh.make_node("If", ["cond"], ["y"], name="gated", then_branch=then_g, else_branch=else_g)
    return _model([node], [_vi("cond", [], TP.BOOL), x], [_vi("y", None)])


def _loop(shape_changes):
    body_in = [_vi("i", [], TP.INT64), _vi("c", [], TP.BOOL), _vi("acc_in", [2, 3])]
    if shape_changes:
        nodes = [oh.make_node("Concat", ["acc_in", "acc_in"], ["acc_out"], axis=0)]
        out_shape = [4, 3]
    else:
        nodes = [oh.make_node("Relu", ["acc_in"], ["acc_out"])]
        out_shape = [2, 3]
    nodes.append(oh.make_node("Identity", ["c"], ["c_out"]))
    body = oh.make_graph(nodes, "body", body_in, [_vi("c_out", [], TP.BOOL), _vi("acc_out", out_shape)])
    node = oh.make_node("Loop", ["n", "cond", "x"], ["y"], name="the_loop", body=body)
    return _model([node], [_vi("n", [], TP.INT64), _vi("cond", [], TP.BOOL), _vi("x", [2, 3])], [_vi("y", None)])


def _decomposed_ln():
    x = _vi("x", [2, 3, 8])
    axes = oh.make_tensor("axes", TP.INT64, [1], [-1])
    two = oh.make_tensor("two", TP.FLOAT, [], [2.0])
    eps = oh.make_tensor("eps", TP.FLOAT, [], [1e-6])
    nodes = [oh.make_node("ReduceMean", ["x", "axes"], ["m"], name="rm1"), oh.make_node("Sub", ["x", "m"], ["d"]),
             oh.make_node("Pow", ["d", "two"], ["p"]), oh.make_node("ReduceMean", ["p", "axes"], ["v"]),
             oh.make_node("Add", ["v", "eps"], ["ve"]), oh.make_node("Sqrt", ["ve"], ["s"]),
             oh.make_node("Div", ["d", "s"], ["y"])]
    return _model(nodes, [x], [_vi("y", [2, 3, 8])], inits=[axes, two, eps])


def _gridsample(rank):
    shape = [1, 1, 4, 4] if rank == 4 else [1, 1, 4, 4, 4]
    gshape = [1, 4, 4, 2] if rank == 4 else [1, 4, 4, 4, 3]
    return _model([oh.make_node("GridSample", ["x", "grid"], ["y"], name="gsamp")],
                  [_vi("x", shape), _vi("grid", gshape)], [_vi("y", None)], opset=20)


def _attention():
    q = _vi("q", [1, 2, 5, 4])
    return _model([oh.make_node("Attention", ["q", "q", "q"], ["y"], name="attn")], [q], [_vi("y", [1, 2, 5, 4])],
                  opset=23)


def _double_init():
    w = oh.make_tensor("w", TP.DOUBLE, [2, 3], [0.0] * 6)
    return _model([oh.make_node("Add", ["x", "w"], ["y"], name="add")], [_vi("x", [2, 3], TP.DOUBLE)],
                  [_vi("y", [2, 3], TP.DOUBLE)], inits=[w])


def _custom_op():
    m = _model([oh.make_node("MyPlugin_TRT", ["x"], ["y"], name="plug", domain="trt.plugins")], [_vi("x", [2])],
               [_vi("y", [2])])
    m.opset_import.append(oh.make_opsetid("trt.plugins", 1))
    return m


# rule id -> (target, violating model factory, clean model factory)
CASES = {
    "TRT001": ("jetpack6", lambda: _resize(antialias=1), lambda: _resize()),
    "TRT002": ("jetpack7", _attention, lambda: _unary("Relu")),
    "TRT003": ("jetpack6", lambda: _if(same_shape=False), lambda: _if()),
    "TRT004": ("trt10", lambda: _if(same_shape=False, same_rank=False), lambda: _if(same_shape=False)),
    "TRT005": ("trt11", lambda: _loop(True), lambda: _loop(False)),
    "TRT006": ("jetpack6", lambda: _unary("Relu", opset=21), lambda: _unary("Relu", opset=20)),
    "TRT007": ("trt10", _double_init, lambda: _unary("Relu")),
    "TRT008": ("trt10", lambda: _unary("Unique"), lambda: _unary("Relu")),
    "TRT010": ("trt10", _custom_op, lambda: _unary("Relu")),
    "TRT011": ("jetpack6", _decomposed_ln, lambda: _unary("Relu")),
    "TRT012": ("jetpack5", lambda: _unary("Relu", opset=17, et=TP.INT64), lambda: _unary("Relu", opset=17)),
    "TRT013": ("trt10", lambda: _gridsample(5), lambda: _gridsample(4)),
    "TRT014": ("trt10", lambda: _resize(coordinate_transformation_mode="half_pixel_symmetric"), lambda: _resize()),
    "TRT015": ("jetpack5", lambda: _resize_scales([1.0, 2.0, 2.0, 2.0]), lambda: _resize_scales([1.0, 1.0, 2.0, 2.0])),
    "TRT016": ("jetpack6", lambda: _axes_op("Unsqueeze", True), lambda: _axes_op("Unsqueeze", False)),
    "TRT017": ("trt11", lambda: _axes_op("ReduceMean", True), lambda: _axes_op("ReduceMean", False)),
    "TRT018": ("jetpack6", _if_runtime_shape, lambda: _if()),
}


def test_every_rule_has_a_case_and_a_source():
    assert set(CASES) == {r.id for r in RULES}
    assert all(r.source and r.fix and r.severity in ("error", "warning") for r in RULES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fires_on_violation_only(rule_id):
    target, bad, good = CASES[rule_id]
    report = lint_onnx(bad(), target)
    hit = [f for f in report.findings if f.rule_id == rule_id]
    assert hit, report.findings
    assert hit[0].node and hit[0].op and hit[0].fix and hit[0].source
    assert rule_id not in lint_onnx(good(), target).rule_ids()


def test_version_bounds():
    assert "TRT002" not in lint_onnx(_attention(), "trt10").rule_ids()  # parsed from 10.14
    assert "TRT003" not in lint_onnx(_if(same_shape=False), "trt10").rule_ids()  # rank-equal OK from 10.11
    assert not {"TRT014", "TRT015"} & lint_onnx(_resize(mode="cubic"), "jetpack6").rule_ids()
    assert "TRT015" not in lint_onnx(_resize_scales([1.0, 2.0, 2.0, 2.0]), "jetpack6").rule_ids()  # 8.5 only
    assert "TRT016" not in lint_onnx(_axes_op("Squeeze", True), "jetpack7").rule_ids()  # dynamic axes from 10.7
    assert "TRT016" in lint_onnx(_axes_op("Squeeze", True), "jetpack6").rule_ids()
    assert "TRT012" not in lint_onnx(_unary("Relu", et=TP.INT64), "jetpack6").rule_ids()
    assert "TRT008" in lint_onnx(_unary("LayerNormalization", opset=17), "jetpack5").rule_ids()


def test_constant_condition_if_is_folded_not_an_error():
    """The parser parses only the taken branch of an If with a constant condition (research L3)."""
    for target in ("jetpack6", "trt10"):
        ids = lint_onnx(_if(same_shape=False, same_rank=False, constant_cond=True), target).rule_ids()
        assert not {"TRT003", "TRT004"} & ids


def test_severities_follow_what_the_parser_does():
    """A newer opset and float64 are read by the parser (warnings); an unsupported op is refused (error)."""
    newer = lint_onnx(_unary("Relu", opset=21), "jetpack6")
    assert newer and [f.severity for f in newer.findings] == ["warning"]
    assert lint_onnx(_double_init(), "trt10") and "TRT007" in lint_onnx(_double_init(), "trt10").rule_ids()
    assert not lint_onnx(_unary("STFT"), "jetpack6")


def test_op_tables():
    assert {"Attention", "RMSNormalization"} <= TARGETS["trt10"].ops
    assert "Attention" not in TARGETS["jetpack7"].ops and "LayerNormalization" in TARGETS["jetpack6"].ops
    assert "LayerNormalization" not in TARGETS["jetpack5"].ops
    # dated arrivals (research L21/L25): supported on 10.3 / not yet on 10.3 / on 10.13 / Swish only on 11
    assert {"DeformConv", "GroupNormalization", "IsInf", "Mish"} <= TARGETS["jetpack6"].ops
    assert not {"BlackmanWindow", "HammingWindow", "HannWindow", "STFT"} & TARGETS["jetpack6"].ops
    assert {"BlackmanWindow", "HammingWindow", "HannWindow", "STFT"} <= TARGETS["jetpack7"].ops
    assert "Swish" in TARGETS["trt11"].ops and "Swish" not in TARGETS["trt10"].ops
    assert [t.max_opset for t in TARGETS.values()] == [17, 20, 22, 24, 24]


def test_bad_target_and_bad_file(tmp_path):
    with pytest.raises(UsageError, match="jetpack6"):
        lint_onnx(_unary(), "jetpack4")
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(InvalidArtifactError):
        lint_onnx(bad, "trt10")


# CLI --------------------------------------------------------------------------------------------------------------
def _cli(args):
    from click.testing import CliRunner

    from resvit_export.cli.main import cli

    return CliRunner().invoke(cli, ["lint", *args])


def test_cli_lint_errors_exit_5_and_writes_nothing(tmp_path):
    path = tmp_path / "aa.onnx"
    onnx.save(_resize(antialias=1), path)
    res = _cli([str(path), "--target", "jetpack6"])
    assert res.exit_code == 5, res.output
    assert "TRT001" in res.output and "FAILED" in res.output.splitlines()[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aa.onnx"]


def test_cli_lint_json_and_report_file(tmp_path):
    path = tmp_path / "ok.onnx"
    onnx.save(_resize(), path)
    res = _cli([str(path), "--target", "jetpack6", "--target", "trt11", "--json", "-o", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["passed"] and [r["target"] for r in data["reports"]] == ["jetpack6", "trt11"]
    assert json.loads(res.stdout)["passed"]
