"""`resvit-export calibrate` through click's CliRunner on a tiny exported DeiT."""

import json

import pytest
from click.testing import CliRunner

from resvit_export.cli.main import cli


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    import torch
    from torch.export import Dim

    from resvit_export.models import create_model

    path = tmp_path_factory.mktemp("calib_cli") / "deit_test.onnx"
    torch.onnx.export(create_model("deit_test"), (torch.randn(1, 3, 224, 224),), str(path), dynamo=True,
                      opset_version=18, input_names=["pixels"], output_names=["logits"],
                      dynamic_shapes={"x": {0: Dim("batch", min=1, max=8), 2: Dim("height", min=32, max=1024),
                                            3: Dim("width", min=32, max=1024)}})
    return path


def test_calibrate_synthetic_then_cache_hit(tiny_onnx, tmp_path):
    out = tmp_path / "calibration" / "tiny"
    args = ["calibrate", str(tiny_onnx), "--calib-synthetic", "3", "--calib-resolutions", "64,96x128",
            "--calib-method", "minmax", "-o", str(out)]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert first.output.strip().splitlines()[-1].startswith("PASSED |") and "cache miss" in first.output
    assert {p.name for p in out.iterdir()} == {"calib.npz", "calib.json", "calib.cache", "status.json"}
    status = json.loads((out / "status.json").read_text())
    assert status["command"] == "calibrate" and status["status"] == "PASSED"
    assert set(status["files"]) == {"calib.npz", "calib.json", "calib.cache"}
    assert len(list((tmp_path / "calibration" / "cache").glob("*-minmax.json"))) == 1
    assert (out / "calib.cache").read_text().startswith("TRT-100300-EntropyCalibration2\n")
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0 and "cache hit" in second.output


@pytest.mark.parametrize("extra, message", [
    ([], "INT8 needs calibration data: pass --calib-data DIR or --calib-synthetic N"),
    (["--calib-synthetic", "2", "--calib-data", "."], "conflict"),
    (["--calib-synthetic", "2", "--calib-resolutions", "64,abc"], "bad size 'abc'"),
    (["--calib-synthetic", "2", "--calib-resolutions", "8"], "too small"),
])
def test_calibrate_usage_errors(tiny_onnx, tmp_path, extra, message):
    r = CliRunner().invoke(cli, ["calibrate", str(tiny_onnx), "-o", str(tmp_path / "c"), *extra])
    assert r.exit_code == 2 and message in r.output, r.output


def test_calibrate_missing_model(tmp_path):
    r = CliRunner().invoke(cli, ["calibrate", str(tmp_path / "nope.onnx"), "--calib-synthetic", "2"])
    assert r.exit_code == 6 and "does not exist" in r.output


def test_calibrate_refuses_a_build_that_did_not_pass(build_copy, tmp_path):
    status = json.loads((build_copy / "status.json").read_text())
    (build_copy / "status.json").write_text(json.dumps({**status, "status": "FAILED", "exit_code": 3}))
    r = CliRunner().invoke(cli, ["calibrate", str(build_copy), "--calib-synthetic", "2", "-o", str(tmp_path / "c")])
    assert r.exit_code == 6 and "says build FAILED" in r.output, r.output
    assert not (tmp_path / "c").exists()
