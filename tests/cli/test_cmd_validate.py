"""``resvit-export validate DIR``: pass (0), breach (3), missing export.json (6); reports and status.json."""

import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from resvit_export.cli.main import cli
from resvit_export.models import create_model
from resvit_export.profiles import parse_profile


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """An export directory as `resvit-export export` leaves it: model.onnx + export.json."""
    from torch.export import Dim

    from resvit_export.export.record import write_record
    from resvit_export.io import sha256_file

    d = tmp_path_factory.mktemp("exp")
    model = create_model("deit_test")
    dyn = {"x": {0: Dim("batch", min=1, max=8), 2: Dim("height", min=32, max=1024),
                 3: Dim("width", min=32, max=1024)}}
    torch.onnx.export(model, (torch.randn(2, 3, 64, 96),), str(d / "model.onnx"), dynamo=True, opset_version=18,
                      input_names=["pixels"], output_names=["logits"], dynamic_shapes=dyn)
    write_record(d, {"schema": 1, "model": "deit_test", "family": "deit", "entry": "image", "overrides": {},
                     "seed": 0, "weights": None, "onnx": "model.onnx", "onnx_sha256": sha256_file(d / "model.onnx"),
                     "input_names": ["pixels"], "output_names": ["logits"],
                     "profiles": [parse_profile("32-96").to_dict()]})
    return d


def _run(*args):
    return CliRunner().invoke(cli, ["validate", *map(str, args)])


def test_validate_passes(export_dir):
    (export_dir / "status.json").write_text(json.dumps({"command": "build", "status": "PASSED"}))
    res = _run(export_dir, "--resolutions", "33x95", "--inputs", "synthetic")
    assert res.exit_code == 0, res.output
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("PASSED |") and "resvit-export validate" in last and "fp32 parity PASSED" in last
    status = json.loads((export_dir / "status.json").read_text())
    assert status["command"] == "validate" and status["status"] == "PASSED" and status["exit_code"] == 0
    assert status["parity"]["passed"] is True and status["onnx"].endswith("model.onnx")
    assert status["previous"] == {"command": "build", "status": "PASSED"}  # a build's status is kept inside
    report = json.loads((export_dir / "parity.json").read_text())
    assert any(c["name"] == "user-33x95-b1" for c in report["cases"])
    # status.json is written last
    assert (export_dir / "status.json").stat().st_mtime_ns >= (export_dir / "parity.png").stat().st_mtime_ns


def test_validate_breach_exits_3(export_dir, tmp_path):
    # a different (tighter than float rounding) tolerance turns the same artifact into a breach
    res = _run(export_dir, "--atol", "1e-12", "--rtol", "0", "--inputs", "gaussian", "--precision", "fp32",
               "--onnx", export_dir / "model.onnx")
    assert res.exit_code == 3, res.output
    assert "ParityError: fp32 parity FAILED" in res.output and "largest error at batch row" in res.output
    assert res.output.count("Traceback") == 0
    status = json.loads((export_dir / "status.json").read_text())
    assert status["status"] == "FAILED" and status["exit_code"] == 3
    assert status["previous"]["command"] == "build"


def test_missing_export_json_exits_6(tmp_path, export_dir):
    shutil.copy(export_dir / "model.onnx", tmp_path / "model.onnx")
    res = _run(tmp_path)
    assert res.exit_code == 6, res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: InvalidArtifactError:") and "export.json" in lines[0]


def test_bad_resolution_is_a_usage_error(export_dir):
    res = _run(export_dir, "--resolutions", "2000x32")
    assert res.exit_code == 2 and "outside the profile" in res.output
