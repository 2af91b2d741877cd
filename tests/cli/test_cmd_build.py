"""`resvit-export build` end to end through click's runner, on a machine without TensorRT."""

import json
import os
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from resvit_export.cli.main import cli

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _build(args):
    return CliRunner().invoke(cli, ["build", *args], catch_exceptions=False)


def _status(out_dir):
    return json.loads((out_dir / "status.json").read_text())


_AHEAD = hasattr(os, "fork") and (os.cpu_count() or 1) >= 2  # build computes PyTorch's side during export


def _reference_dirs():
    roots = {Path("/dev/shm"), Path(tempfile.gettempdir())}
    return {p for r in roots if r.is_dir() for p in r.glob("resvit-reference-*")}


@pytest.fixture(scope="module")
def fp32_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("build") / "deit"
    result = _build(["deit_test", "--profile", "224-448", "--resolutions", "240x416", "-o", str(out)])
    return result, out


def test_build_passes_with_engine_deferred(fp32_build):
    result, out = fp32_build
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("PASSED |") and "deferred: engine" in last
    status = _status(out)
    assert status["status"] == "PASSED" and status["details"]["engine"] == "DEFERRED"
    steps = {s["name"]: s for s in status["details"]["steps"]}
    assert list(steps) == ["export", "rewrite", "lint", "validate", "plan", "engine", "engine-parity", "manifest"]
    assert steps["engine-parity"]["status"] == "DEFERRED" and "not run" in steps["engine-parity"]["detail"]
    assert "TensorRT is not installed" in steps["engine"]["detail"]
    for name in ("model.onnx", "model.rewritten.onnx", "export.json", "rewrite.json", "lint.json", "parity.json",
                 "parity.md", "parity.png", "plan.json", "trtexec.sh", "manifest.json"):
        assert (out / name).is_file(), name
    parity = json.loads((out / "parity.json").read_text())
    assert parity["passed"] is True
    sizes = {(c["h"], c["w"]) for c in parity["cases"]}
    assert {(224, 224), (448, 448), (240, 416), (224, 448), (448, 224)} <= sizes  # min, max, user, both aspects
    assert any(c["h"] % 16 or c["w"] % 16 for c in parity["cases"])  # off the patch grid
    assert any(c["batch"] > 1 for c in parity["cases"])
    if _AHEAD:  # PyTorch ran in a child during export; validate ran ONNX Runtime alone
        assert parity["timing"]["reference"].startswith("ahead")
        assert "PyTorch computed ahead during export" in steps["validate"]["detail"]
    # the rewrite dropped the DeiT pos-embed antialias (exact: the profile only upsamples the 14x14 table)
    rewrite = json.loads((out / "rewrite.json").read_text())
    assert any(p["name"] == "resize_antialias" and p["changes"] for p in rewrite["passes"])


def test_build_refuses_non_empty_output(fp32_build):
    _, out = fp32_build
    before = sorted(p.name for p in out.iterdir())
    result = _build(["deit_test", "--profile", "224-448", "-o", str(out)])
    assert result.exit_code == 9 and "--force" in result.output
    assert sorted(p.name for p in out.iterdir()) == before


def test_build_fails_lint_when_antialias_cannot_be_dropped(tmp_path):
    # Below 224 px the DeiT pos-embed resize downsamples: dropping antialias would change outputs, so the
    # rewrite keeps it and the TensorRT lint must fail the build (exit 5) with a FAILED status.json.
    out = tmp_path / "b"
    before = _reference_dirs()
    result = _build(["deit_test", "--profile", "64-256", "-o", str(out)])
    assert result.exit_code == 5, result.output
    assert _reference_dirs() <= before  # the reference child of the failed build and its files are gone
    assert "TRT001" in result.output
    status = _status(out)
    assert status["status"] == "FAILED" and status["exit_code"] == 5
    assert status["details"]["steps"][-1]["name"] == "lint" and status["error"].startswith("LintError: ")
    assert not (out / "manifest.json").exists() and (out / "lint.json").is_file()  # kept for diagnosis
    assert f"see {out}" in result.output.strip().splitlines()[-2]  # the FAILED line says where to look


def test_build_no_rewrite_and_only(tmp_path):
    out = tmp_path / "b"
    result = _build(["rivit_test", "--profile", "64-128", "--no-rewrite", "--engine", "skip", "-o", str(out)])
    assert result.exit_code == 0, result.output
    steps = {s["name"]: s["status"] for s in _status(out)["details"]["steps"]}
    assert steps["rewrite"] == "SKIPPED" and steps["engine"] == "SKIPPED"
    out2 = tmp_path / "c"
    result = _build(["rivit_test", "--profile", "64-128", "--only", "fold_constants", "-o", str(out2)])
    assert result.exit_code == 0, result.output
    passes = json.loads((out2 / "rewrite.json").read_text())["passes"]
    assert [p["name"] for p in passes if not p["skipped"]] == ["fold_constants"]


def test_build_fp16_validates_the_fp16_graph(tmp_path):
    out = tmp_path / "b"
    result = _build(["deit_test", "--profile", "224-320", "--fp16", "-o", str(out)])
    assert result.exit_code == 0, result.output
    names = [s["name"] for s in _status(out)["details"]["steps"]]
    assert "precision-fp16" in names and "validate-fp16" in names
    fp16 = json.loads((out / "parity.fp16.json").read_text())
    assert fp16["passed"] is True
    if _AHEAD:  # the fp16 matrix compares against the same PyTorch runs as the fp32 one
        assert fp16["timing"]["reference"] == json.loads((out / "parity.json").read_text())["timing"]["reference"]
        assert fp16["timing"]["reference"].startswith("ahead")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"]["mode"] == "fp16" and "node_layer_norm" in manifest["precision"]["fp32_nodes"]


def test_deployment_overrides_fit_vitar_to_the_profile():
    import torch

    from resvit_export.models import create_model
    from resvit_export.pipeline import deployment_overrides
    from resvit_export.profiles import parse_profile

    profiles = [parse_profile("224-512"), parse_profile("224x320-448x640")]
    assert deployment_overrides("vitar_test", profiles, {}) == {"max_side": 640}
    assert deployment_overrides("vitar_test", profiles, {"max_side": 4096}) == {"max_side": 4096}  # user wins
    assert deployment_overrides("vitar_test", [parse_profile("224-8192")], {}) == {"max_side": 4096}  # never raised
    full, fitted = create_model("vitar_test"), create_model("vitar_test", max_side=640)
    assert len(fitted.merge_trace(torch.zeros(1, 3, 640, 640))) < len(full.merge_trace(torch.zeros(1, 3, 640, 640)))
    with torch.no_grad():
        for hw in ((224, 224), (640, 448), (97, 601)):
            x = torch.randn(2, 3, *hw)
            assert torch.equal(full(x), fitted(x))  # the dropped stages were exact identities
