"""`resvit-export export` end to end with CliRunner: success, refusals and their exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from resvit_export.cli.main import cli
from resvit_export.export import load_reference_model
from resvit_export.errors import InvalidArtifactError
from resvit_export.models import create_model, save_weights

ort = pytest.importorskip("onnxruntime")


def _run(*args):
    return CliRunner().invoke(cli, ["export", *map(str, args)])


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "deit_test_seed1.safetensors"
    save_weights(create_model("deit_test", seed=1), path)
    return path


@pytest.fixture(scope="module")
def exported_dir(tmp_path_factory, weights):
    out = tmp_path_factory.mktemp("cli") / "deit"
    res = _run("deit_test", "--profile", "64-160", "--profile", "96x80-256x192", "--batch", "1-4@1", "-o", out,
               "--weights", weights, "--set", "max_side=1024", "--seed", "3")
    return out, res


def test_export_success(exported_dir, weights):
    out, res = exported_dir
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines[-1].startswith("PASSED") and "resvit-export export" in lines[-1]
    assert "torch.onnx" not in res.output and "W1121" not in res.output  # exporter chatter captured
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "model.onnx", "status.json"]
    status = json.loads((out / "status.json").read_text())
    assert status["command"] == "export" and status["status"] == "PASSED"
    assert sorted(status["files"]) == ["export.json", "model.onnx"]
    rec = json.loads((out / "export.json").read_text())
    assert rec["model"] == "deit_test" and rec["seed"] == 3 and rec["overrides"] == {"max_side": "1024"}
    assert rec["weights_sha256"] and rec["opset"] == 18 and rec["input_names"] == ["pixels"]
    assert len(rec["profiles"]) == 2 and rec["profiles"][0]["batch"] == {"min": 1, "opt": 1, "max": 4}
    # union of the two profiles: min of mins, max of maxes
    assert rec["range_constraints"]["height"] == [64, 256] and rec["range_constraints"]["width"] == [64, 192]
    assert rec["versions"]["torch"] and rec["versions"]["onnx"]


def test_reference_round_trip(exported_dir):
    out, res = exported_dir
    assert res.exit_code == 0, res.output
    model, rec = load_reference_model(out)
    seeded = create_model("deit_test", seed=1)  # the weights file, not the recorded seed, must win
    x = torch.randn(3, 3, 97, 181)
    with torch.no_grad():
        ref = model(x).numpy()
        np.testing.assert_array_equal(ref, seeded(x).numpy())
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"pixels": x.numpy()})[0], ref, atol=1e-4, rtol=1e-4)


def test_corrupt_artifacts_raise_invalid_artifact(exported_dir, tmp_path):
    out, res = exported_dir
    assert res.exit_code == 0, res.output
    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(InvalidArtifactError, match="missing"):
        load_reference_model(bad)
    (bad / "export.json").write_text("{not json")
    with pytest.raises(InvalidArtifactError, match="not valid JSON"):
        load_reference_model(bad)
    rec = json.loads((out / "export.json").read_text())
    (bad / "export.json").write_text(json.dumps(rec))
    (bad / "model.onnx").write_bytes(b"this is not onnx")
    from resvit_export.io import sha256_file

    rec["onnx_sha256"] = sha256_file(bad / "model.onnx")
    (bad / "export.json").write_text(json.dumps(rec))
    with pytest.raises(InvalidArtifactError) as info:
        load_reference_model(bad)
    assert "\n" not in str(info.value) and "ONNX" in str(info.value)


def test_non_empty_dir_refused_without_force(exported_dir):
    out, _ = exported_dir
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    res = _run("deit_test", "--profile", "64-128", "-o", out)
    assert res.exit_code == 9, res.output
    assert "--force" in res.output
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_mismatched_weights_exit_6(weights, tmp_path):
    out = tmp_path / "o"
    res = _run("deit_test", "--profile", "64-128", "--set", "dim=64", "--weights", weights, "-o", out)
    assert res.exit_code == 6, res.output
    assert "CheckpointError" in res.output and not out.exists()


def test_export_failure_exit_4_and_failed_status(monkeypatch, tmp_path):
    import resvit_export.export.onnx_export as export_pkg
    from resvit_export.errors import RangeNarrowedError

    def narrowed(*a, **k):
        raise RangeNarrowedError("dim 'height' was narrowed by the exporter: requested [64, 128], exported [65, 67]")

    monkeypatch.setattr(export_pkg, "export_onnx", narrowed)
    out = tmp_path / "o"
    res = _run("deit_test", "--profile", "64-128", "-o", out)
    assert res.exit_code == 4, res.output
    assert "RangeNarrowedError" in res.output and "requested [64, 128]" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["status.json"]  # no model.onnx / export.json
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "FAILED" and status["exit_code"] == 4 and "narrowed" in status["error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".o.lock", "o"]  # no staging directory left behind
