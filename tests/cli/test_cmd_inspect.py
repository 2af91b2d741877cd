"""`resvit-export inspect`: manifest summary, hash verification (exit 6), host mismatches - no deserialization."""

import json
import time

import pytest
from click.testing import CliRunner

from resvit_export.cli.main import cli
from resvit_export.profiles import parse_profile
from resvit_export.status import write_status
from resvit_export.trt.manifest import HostInfo, build_manifest, write_manifest
from resvit_export.trt.memory import ModelSpec
from resvit_export.trt.planner import plan_engine


def make(tmp_path, with_engine=True):
    (tmp_path / "model.fp16.onnx").write_bytes(b"onnx")
    arts = {"onnx": [tmp_path / "model.fp16.onnx"]}
    if with_engine:
        (tmp_path / "model.fp16.plan").write_bytes(b"not a real plan")
        arts["engine"] = [tmp_path / "model.fp16.plan"]
    host = HostInfo(tensorrt="10.3.0", cuda="12.6", gpu_name="Orin", compute_capability="8.7", jetpack="6.1/6.2",
                    l4t="36.4.0", machine="aarch64") if with_engine else HostInfo()
    plan = plan_engine([parse_profile("224-1024")], ModelSpec("deit", 32, 2, 2, name="deit_test"))
    write_manifest(build_manifest(plan, arts, tmp_path, host=host, onnx_precision="fp16"), tmp_path / "manifest.json")
    write_status(tmp_path, "build", "PASSED", started=time.monotonic())  # the verdict over exactly these files
    return tmp_path


def run(*args):
    return CliRunner().invoke(cli, ["inspect", *map(str, args)], catch_exceptions=False)


def test_inspect_explains_host_mismatch_without_loading(tmp_path):
    d = make(tmp_path)
    for target in (d, d / "model.fp16.plan", d / "manifest.json"):
        r = run(target)
        assert r.exit_code == 0, r.output
        assert "built with TensorRT 10.3.0 on Orin (compute 8.7), JetPack 6.1/6.2" in r.output
        assert "all hashes match" in r.output and "HOST: built with TensorRT 10.3.0 on sm_87" in r.output
        assert "rebuild on the device" in r.output and r.output.strip().splitlines()[-1].startswith("PASSED")
    r = run(d, "--strict")
    assert r.exit_code == 8


def test_inspect_tampered_engine_exits_6(tmp_path):
    d = make(tmp_path)
    (d / "model.fp16.plan").write_bytes(b"swapped plan")
    r = run(d / "model.fp16.plan")
    assert r.exit_code == 6
    assert "TAMPERED: engine model.fp16.plan was modified" in r.output
    assert "is not the engine this manifest describes" in r.output


def test_inspect_json_and_deferred_engine(tmp_path):
    d = make(tmp_path, with_engine=False)
    r = run(d, "--json")
    assert r.exit_code == 0, r.output
    f = json.loads(r.output)
    assert f["engine_status"] == "deferred" and f["tampered"] == [] and f["host_mismatches"] == []
    r = run(d)
    assert "engine step was deferred" in r.output


def test_inspect_without_manifest(tmp_path):
    (tmp_path / "lonely.plan").write_bytes(b"x")
    r = run(tmp_path / "lonely.plan")
    assert r.exit_code == 6 and "no sidecar manifest" in r.output


def test_inspect_refuses_a_failed_build_unless_overridden(tmp_path):
    d = make(tmp_path)
    status = json.loads((d / "status.json").read_text())
    (d / "status.json").write_text(json.dumps({**status, "status": "FAILED", "exit_code": 3}))
    r = CliRunner().invoke(cli, ["inspect", str(d)])
    assert r.exit_code == 6 and "says build FAILED" in r.output and len(r.output.strip().splitlines()) == 1
    r = run(d, "--allow-unverified")
    assert r.exit_code == 0 and "UNVERIFIED: build FAILED" in r.output


@pytest.mark.parametrize("edit,field", [
    (lambda m: m.update(profiles=[1]), "profiles[0]"),
    (lambda m: m["artifacts"][0].update(sha256=7), "artifacts[0].sha256"),
    (lambda m: m.update(gpu="Orin"), "gpu"),
])
def test_inspect_schema_errors_name_file_and_field(tmp_path, edit, field):
    d = make(tmp_path)
    manifest = json.loads((d / "manifest.json").read_text())
    edit(manifest)
    (d / "manifest.json").write_text(json.dumps(manifest))
    write_status(d, "build", "PASSED", started=time.monotonic())  # a consistent directory, just a bad manifest
    r = CliRunner().invoke(cli, ["inspect", str(d)])
    assert r.exit_code == 6, r.output
    line = r.output.strip()
    assert "\n" not in line and "manifest.json: field " + field in line and "Traceback" not in line
