"""Parity PyTorch vs ONNX Runtime on real exports of the tiny test models (module-scoped exports)."""

import json

import numpy as np
import pytest
import torch

from resvit_export.errors import UsageError
from resvit_export.models import create_model, get_entry, list_models
from resvit_export.profiles import parse_profile
from resvit_export.validate.parity import Tolerances, compare_outputs, default_tolerances, validate_onnx

PROFILE = parse_profile("32-128")


def export_test_onnx(model, path):
    """The colleague's exporter is not used here on purpose: these tests pin only the validate side."""
    from torch.export import Dim

    dyn = {"x": {0: Dim("batch", min=1, max=8), 2: Dim("height", min=32, max=1024),
                 3: Dim("width", min=32, max=1024)}}
    torch.onnx.export(model, (torch.randn(2, 3, 64, 96),), str(path), dynamo=True, opset_version=18,
                      input_names=["pixels"], output_names=["logits"], dynamic_shapes=dyn)
    return path


@pytest.fixture(scope="module")
def deit(tmp_path_factory):
    d = tmp_path_factory.mktemp("deit")
    model = create_model("deit_test")
    good = export_test_onnx(model, d / "model.onnx")
    # a deliberately wrong artifact: class 3's bias shifted by 0.01 -> every row is off at logits[*, 3]
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(good))
    for init in m.graph.initializer:
        if init.name == "head.bias":
            arr = numpy_helper.to_array(init).copy()
            arr[3] += 0.01
            init.CopyFrom(numpy_helper.from_array(arr, init.name))
    bad = d / "model.wrong.onnx"
    onnx.save(m, str(bad))
    return model, good, bad, d


def test_correct_export_passes(deit):
    model, good, _, d = deit
    out = d / "reports"
    forwards = []
    hook = model.register_forward_hook(lambda m, args, y: forwards.append(tuple(args[0].shape)))
    try:
        report = validate_onnx(model, good, [PROFILE], extra_resolutions="97x113", out_dir=out)
    finally:
        hook.remove()
    assert report.passed and bool(report)
    names = {c.name for c in report.cases}
    assert "user-97x113-b1" in names and "aspect-32x128-b2" in names
    assert {c.input for c in report.cases} == {"gaussian", "synthetic"}
    assert len(report.cases) == 2 * len(names)
    # one reference forward per compared case x input, nothing else (no warm-up or timing re-runs)
    assert sorted(forwards) == sorted((c.batch, 3, c.h, c.w) for c in report.cases)
    # the graph proves the grid property, so the aligned edge case one patch below max is covered off-grid
    assert [(m.case.name, m.into) for m in report.merged] == [("edge-112x112-b1", "offgrid-127x119-b1")]
    assert "edge-112x112-b1" not in names and "1 same-grid merged" in report.summary_line()
    assert report.timing["concurrent"] is True and report.timing["latency"].startswith("best compared run")
    md = (out / "parity.md").read_text()
    assert "## Merged cases" in md and "| edge-112x112-b1 | 112×112 | 1 | offgrid-127x119-b1 |" in md
    assert 'skipped message="merged into offgrid-127x119-b1' in (out / "parity.junit.xml").read_text()
    for c in report.cases:
        assert c.max_abs < 1e-5 and c.cosine > 0.999999 and c.top1 == 1.0
        assert c.torch_ms > 0 and c.ort_ms > 0 and c.tokens == (c.h // 16) * (c.w // 16)
    assert report.top1_agreement == 1.0
    assert report.worst is not None and report.worst.budget < 0.5
    d_json = json.loads((out / "parity.json").read_text())
    assert d_json["passed"] is True and len(d_json["cases"]) == len(report.cases)
    assert "PASSED" in report.summary_line() and report.failure_line() == "no breach"
    assert report.summary_dict()["failed"] == 0


def test_wrong_export_fails_and_the_error_is_located(deit):
    model, _, bad, d = deit
    report = validate_onnx(model, bad, [PROFILE], input_kind="gaussian", isolated=True)
    assert not report.passed
    assert len(report.failed_cases) == len(report.cases)  # the bias is wrong at every resolution
    w = report.worst
    assert w.worst_index == [3] and 0 <= w.worst_row < w.batch
    assert w.max_abs == pytest.approx(0.01, rel=1e-3)
    assert any("exceeds atol" in f for f in w.failures)
    assert "logits[3]" in report.failure_line() and "FAILED" in report.summary_line()
    assert report.isolated
    # the same artifact passes when the user loosens atol (and cosine) explicitly
    loose = default_tolerances("fp32").with_overrides(atol=0.02, cos_min=0.999, top1_min=0.5)
    assert validate_onnx(model, bad, [PROFILE], input_kind="synthetic", tolerances=loose).passed


def test_different_seed_reference_fails(deit):
    _, good, _, _ = deit
    other = create_model("deit_test", seed=1)
    report = validate_onnx(other, good, [parse_profile("32-64")], input_kind="synthetic")
    assert not report.passed
    assert any("cosine" in f for c in report.failed_cases for f in c.failures)
    assert report.top1_agreement < 1.0 or report.failed_cases


def test_bad_arguments(deit):
    model, good, _, _ = deit
    with pytest.raises(UsageError, match="precision"):
        validate_onnx(model, good, [PROFILE], precision="fp8")
    with pytest.raises(UsageError, match="input kind"):
        validate_onnx(model, good, [PROFILE], input_kind="photos")
    with pytest.raises(UsageError, match="outside the profile"):
        validate_onnx(model, good, [PROFILE], extra_resolutions="256x256")
    with pytest.raises(UsageError, match="cos-min"):
        Tolerances(cos_min=2.0)


def test_compare_outputs_metrics_and_gates():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((4, 10)).astype(np.float32)
    got = ref.copy()
    got[2, 7] += 1e-3
    m = compare_outputs({"logits": ref}, {"logits": got}, default_tolerances("fp32"))
    assert m["worst_row"] == 2 and m["worst_index"] == [7]
    assert m["max_abs"] == pytest.approx(1e-3, rel=1e-3) and m["failures"]
    # a top-1 flip is counted; fp16 tolerances pass small noise
    flip = ref.copy()
    r = 1
    flip[r, ref[r].argmin()] = ref[r].max() + 1.0
    m = compare_outputs({"logits": ref}, {"logits": flip}, default_tolerances("fp16"))
    assert m["top1_rows"] == 3 and m["top1"] == 0.75
    noisy = ref + 1e-3 * rng.standard_normal(ref.shape).astype(np.float32)
    assert not compare_outputs({"logits": ref}, {"logits": noisy}, default_tolerances("fp16"))["failures"]
    assert not compare_outputs({"logits": ref}, {"logits": noisy}, default_tolerances("int8"))["failures"]
    nan = ref.copy()
    nan[0, 0] = np.nan
    assert any("non-finite" in f for f in compare_outputs({"y": ref}, {"y": nan}, default_tolerances("fp32"))["failures"])
    assert compare_outputs({"y": ref}, {"y": ref[:2]}, default_tolerances("fp32"))["failures"]


OTHER_TEST_MODELS = sorted(n for n in list_models() if get_entry(n).test_variant and n != "deit_test")


@pytest.mark.slow  # one dynamo export each (10-80 s on a busy 2-core machine)
@pytest.mark.parametrize("name", OTHER_TEST_MODELS)
def test_other_test_models_pass(tmp_path, name):
    model = create_model(name)
    onnx_path = export_test_onnx(model, tmp_path / f"{name}.onnx")
    prof = parse_profile("32-96")
    report = validate_onnx(model, onnx_path, [prof], input_kind="synthetic")
    assert report.passed, report.failure_line()


def _export_packed(path):
    from resvit_export.models.navit import PackedNaViT, pack_images

    model = create_model("navit_test")
    gen = torch.Generator().manual_seed(0)
    sizes = [(64, 48), (48, 80), (32, 32), (96, 64)]  # 12+15+4 tokens in one sequence, 24 in a second
    batch = pack_images([torch.randn(3, h, w, generator=gen) for h, w in sizes], patch_size=16, max_seq_len=31)
    D = torch.export.Dim
    s, t, e = D("seqs", min=1), D("tokens", min=1), D("images", min=1)
    dyn = ({0: s, 1: t}, {0: s, 1: t}, {0: s, 1: t}, {0: s, 1: t}, {0: s, 1: e})
    torch.onnx.export(PackedNaViT(model).eval(), batch.inputs(), str(path), dynamo=True, opset_version=18,
                      input_names=["patches", "coords", "grid_hw", "image_ids", "image_valid"],
                      output_names=["logits"], dynamic_shapes=dyn)
    return model, path


@pytest.mark.skipif("navit_test" not in list_models(), reason="models/navit.py has not landed")
def test_packed_navit_parity(tmp_path):
    from resvit_export.validate.parity import validate_packed_navit

    model, onnx_path = _export_packed(tmp_path / "packed.onnx")
    report = validate_packed_navit(model, onnx_path, out_dir=tmp_path)
    assert report.passed, report.failure_line()
    assert len(report.cases) == 8 and {c.kind for c in report.cases} == {"packed"}
    assert any(c.name.startswith("packed2-5img-S") for c in report.cases)  # several images per sequence
    assert (tmp_path / "parity.packed.md").is_file() and (tmp_path / "parity.packed.png").is_file()
    # the same ONNX against a reference with other weights: every packing breaches
    wrong = validate_packed_navit(create_model("navit_test", seed=1), onnx_path,
                                  packings=[([(40, 72), (64, 33)], None)])
    assert not wrong.passed and wrong.worst.worst_row in (0, 1)


def test_sizes_onnx_runtime_rejects_are_failing_cases_not_an_abort(deit):
    """A graph pinned to 64x64 (as a static export would be) fails every other size; the report says so."""
    import onnx

    model, good, _, d = deit
    m = onnx.load(str(good))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = 64
    dims[3].dim_value = 64
    pinned = d / "model.pinned.onnx"
    onnx.save(m, str(pinned))
    report = validate_onnx(model, pinned, [parse_profile("32-96")], input_kind="gaussian", out_dir=d / "pinned",
                           extra_resolutions="64x64")
    assert not report.passed
    ok = [c for c in report.cases if c.passed]
    assert {(c.h, c.w) for c in ok} == {(64, 64)}
    bad = report.failed_cases[0]
    assert bad.failures[0].startswith("ONNX Runtime cannot run this size") and bad.to_dict()["max_abs"] is None
    assert "cannot run this size" in report.summary_line()
    data = json.loads((d / "pinned" / "parity.json").read_text())  # strict JSON (no NaN/Infinity)
    assert data["passed"] is False
    assert "cannot run this size" in (d / "pinned" / "parity.md").read_text()


def test_the_merge_proof_holds_on_the_artifact(deit):
    """What merging relies on, checked on the real export: an off-grid input gives the output of its crop."""
    from resvit_export.validate.grid_proof import prove_patch_grid_input
    from resvit_export.validate.runners import run_onnx

    _, good, _, _ = deit
    assert prove_patch_grid_input(good, 16).holds
    x = np.random.default_rng(3).standard_normal((1, 3, 127, 119)).astype(np.float32)
    off, crop = run_onnx(good, [{"pixels": x}, {"pixels": np.ascontiguousarray(x[..., :112, :112])}])
    np.testing.assert_allclose(off["logits"], crop["logits"], rtol=0, atol=1e-6)


def test_sequential_and_unmerged_runs_give_the_same_verdicts(deit):
    model, good, _, _ = deit
    prof = parse_profile("32-64")
    a = validate_onnx(model, good, [prof], input_kind="synthetic")
    b = validate_onnx(model, good, [prof], input_kind="synthetic", concurrent=False, merge=False)
    assert a.timing["latency"].startswith("the first run")  # one kind: each shape ran once (cold)
    by_name = {c.name: c for c in b.cases}
    assert {c.name for c in a.cases} | {m.case.name for m in a.merged} == set(by_name) and not b.merged
    for c in a.cases:
        assert c.max_abs == by_name[c.name].max_abs and c.passed == by_name[c.name].passed
