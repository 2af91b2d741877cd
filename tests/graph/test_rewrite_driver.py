"""The rewrite driver on a real dynamo export of ``deit_test``: every pass proven output-preserving at 3 shapes."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx_graphsurgeon")
pytest.importorskip("onnxscript")

import torch  # noqa: E402

from resvit_export.errors import GraphRewriteError, UsageError  # noqa: E402
from resvit_export.graph import rewrite  # noqa: E402
from resvit_export.graph.lint import lint_onnx  # noqa: E402
from resvit_export.graph.passes import PASS_NAMES, PassResult  # noqa: E402
from resvit_export.graph.rewrite import RewriteContext, apply_rewrites, default_check_shapes  # noqa: E402
from resvit_export.profiles import parse_profile  # noqa: E402


@pytest.fixture(scope="session")
def deit_onnx(tmp_path_factory):
    """deit_test exported with dynamo at opset 18, dynamic batch/H/W (antialiased bicubic pos-embed Resize)."""
    from torch.export import Dim

    from resvit_export.models import create_model

    model = create_model("deit_test").eval()
    h, w = Dim("_h", min=2, max=112), Dim("_w", min=2, max=112)
    prog = torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), dynamo=True, opset_version=18,
                             dynamic_shapes={"x": {0: Dim("b", min=1, max=8), 2: 16 * h, 3: 16 * w}},
                             input_names=["x"], output_names=["logits"], verbose=False)
    path = tmp_path_factory.mktemp("deit") / "deit_test.onnx"
    prog.save(str(path))
    return path


def _ort(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_default_check_shapes_min_capped_max_odd():
    shapes = default_check_shapes([parse_profile("224-1792")], 16)
    assert shapes == ((1, 224, 224), (1, 512, 512), (1, 240, 272))
    (_, h, w) = shapes[2]
    assert h != w and (h // 16) % 2 == 1 and (w // 16) % 2 == 1


def test_driver_rewrites_deit_and_proves_outputs(deit_onnx, tmp_path):
    out = tmp_path / "deit_rw.onnx"
    ctx = RewriteContext(parse_profile("224-1792"), patch_size=16, target="jetpack6")
    report = apply_rewrites(deit_onnx, out, ctx)
    assert [p.name for p in report.passes] == list(PASS_NAMES) and not any(p.skipped for p in report.passes)
    assert len(report.check_shapes) == 3
    assert report.get("resize_antialias").changes and not report.flags
    assert len(report.get("prescale_q").changes) == 2  # one per attention block
    assert report.nodes_after < report.nodes_before
    assert all(p.max_abs <= 1e-4 for p in report.passes) and report.total_max_abs <= 1e-4
    # independent check of the written file against the original at shapes outside the proof set
    for shape in [(1, 3, 224, 224), (2, 3, 336, 240)]:  # inside the profile (W 208 would downsample)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(_ort(out, x), _ort(deit_onnx, x), atol=1e-4, rtol=1e-3)
    assert lint_onnx(deit_onnx, "jetpack6").rule_ids() == {"TRT001"}
    assert not lint_onnx(out, "jetpack6").findings
    m = onnx.load(out)
    resize = next(n for n in m.graph.node if n.op_type == "Resize")
    assert onnx.helper.get_attribute_value(next(a for a in resize.attribute if a.name == "antialias")) == 0


def test_driver_flags_antialias_when_profile_downsamples(deit_onnx):
    ctx = RewriteContext(parse_profile("160-320"), patch_size=16)  # 10x10 grid < 14x14 table
    report = apply_rewrites(deit_onnx, None, ctx, only=["resize_antialias"])
    assert report.flags and "antialias=1 kept" in report.flags[0]
    assert [p.name for p in report.passes if not p.skipped] == ["resize_antialias"]


def test_driver_skip_all_and_unknown_pass(deit_onnx, tmp_path):
    out = tmp_path / "same.onnx"
    report = apply_rewrites(deit_onnx, out, RewriteContext(parse_profile("224-448")), skip_all=True)
    assert all(p.skipped for p in report.passes) and report.nodes_before == report.nodes_after
    assert len(onnx.load(out).graph.node) == len(onnx.load(deit_onnx).graph.node)
    with pytest.raises(UsageError, match="prescale_q"):
        apply_rewrites(deit_onnx, None, RewriteContext(parse_profile("224-448")), only=["nope"])


def test_driver_rejects_output_changing_pass(deit_onnx, tmp_path, monkeypatch):
    def bad_pass(graph, ctx):
        for node in graph.nodes:
            if node.op == "Softmax":
                node.op = "Relu"
                node.attrs.clear()
        return PassResult("bad", changes=["broke softmax"])

    monkeypatch.setattr(rewrite, "PASSES", (("bad", bad_pass),))
    monkeypatch.setattr(rewrite, "PASS_NAMES", ("bad",))
    out = tmp_path / "never.onnx"
    with pytest.raises(GraphRewriteError, match="pass 'bad' changed output"):
        apply_rewrites(deit_onnx, out, RewriteContext(parse_profile("224-448")))
    assert not out.exists()
