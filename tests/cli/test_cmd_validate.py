"""``resvit-export validate DIR``: pass (0), breach (3), refusals (6); reports and status.json.

Every test works on its own copy of a real PASSED build (tests/cli/conftest.py), so none depends on another
having run first (the order-dependent breach test of issue #7).
"""

import json

import onnx
import pytest
from click.testing import CliRunner

from resvit_export.cli.main import cli

from .conftest import files_of, one_line


def _run(*args):
    return CliRunner().invoke(cli, ["validate", *map(str, args)])


def _status(d):
    return json.loads((d / "status.json").read_text())


def test_validate_passes(build_copy):
    res = _run(build_copy, "--resolutions", "65x127", "--inputs", "synthetic")
    assert res.exit_code == 0, res.output
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("PASSED |") and "resvit-export validate" in last and "fp32 parity PASSED" in last
    status = _status(build_copy)
    assert status["command"] == "validate" and status["status"] == "PASSED" and status["exit_code"] == 0
    assert status["details"]["parity"]["passed"] is True and status["details"]["onnx"] == "model.rewritten.onnx"
    assert status["previous"]["command"] == "build" and status["previous"]["status"] == "PASSED"
    report = json.loads((build_copy / "parity.json").read_text())
    assert any(c["name"] == "user-65x127-b1" for c in report["cases"])
    # status.json is written last and vouches for the reports it replaced
    assert (build_copy / "status.json").stat().st_mtime_ns >= (build_copy / "parity.png").stat().st_mtime_ns
    assert set(status["files"]) >= {"parity.json", "parity.png", "model.rewritten.onnx"}


def test_validate_breach_exits_3(build_copy):
    # a tolerance tighter than float rounding turns the same artifact into a breach
    res = _run(build_copy, "--atol", "1e-12", "--rtol", "0", "--inputs", "gaussian", "--precision", "fp32",
               "--onnx", build_copy / "model.onnx")
    assert res.exit_code == 3, res.output
    assert "ParityError: fp32 parity FAILED" in res.output and "largest error at batch row" in res.output
    assert res.output.count("Traceback") == 0
    status = _status(build_copy)
    assert status["status"] == "FAILED" and status["exit_code"] == 3
    assert status["previous"]["command"] == "build"
    # the build that made the graph is still PASSED, so validate may run again with the default tolerances
    assert _run(build_copy, "--inputs", "synthetic").exit_code == 0


def test_missing_export_json_exits_6(build_copy):
    (build_copy / "export.json").unlink()
    res = _run(build_copy)
    assert res.exit_code == 6, res.output
    line = one_line(res.output)
    assert line.startswith("Error: InvalidArtifactError:") and "export.json" in line


def test_bad_resolution_is_a_usage_error(build_copy):
    before = files_of(build_copy)
    res = _run(build_copy, "--resolutions", "2000x32")
    assert res.exit_code == 2 and "outside the profile" in one_line(res.output)
    assert files_of(build_copy) == before


@pytest.mark.parametrize("verdict", ["FAILED", "RUNNING"])
def test_refuses_a_build_that_did_not_pass_unless_overridden(build_copy, verdict):
    status = _status(build_copy)
    status.update(status=verdict, exit_code=5 if verdict == "FAILED" else None)
    (build_copy / "status.json").write_text(json.dumps(status))
    before = files_of(build_copy), (build_copy / "status.json").read_bytes()
    res = _run(build_copy, "--inputs", "synthetic")
    assert res.exit_code == 6, res.output
    assert f"says build {verdict}" in one_line(res.output) and "--allow-unverified" in res.output
    assert (files_of(build_copy), (build_copy / "status.json").read_bytes()) == before  # nothing written
    res = _run(build_copy, "--inputs", "synthetic", "--allow-unverified")
    assert res.exit_code == 0, res.output
    after = _status(build_copy)
    assert after["status"] == "PASSED" and after["allow_unverified"] is True  # the override is recorded


def test_modified_onnx_is_refused_even_with_the_override(build_copy):
    with open(build_copy / "model.rewritten.onnx", "ab") as f:
        f.write(b"\0")
    for extra in ([], ["--allow-unverified"]):
        res = _run(build_copy, *extra)
        assert res.exit_code == 6 and "model.rewritten.onnx was modified" in one_line(res.output), res.output


def test_onnx_with_two_inputs_is_a_bad_file_not_a_usage_error(build_copy, tmp_path):
    m = onnx.load(str(build_copy / "model.onnx"))
    extra = onnx.helper.make_tensor_value_info("mask", onnx.TensorProto.FLOAT, [1])
    m.graph.input.append(extra)
    onnx.save(m, str(tmp_path / "two.onnx"))
    res = _run(build_copy, "--onnx", tmp_path / "two.onnx")
    assert res.exit_code == 6 and "has 2 inputs" in one_line(res.output), res.output


@pytest.mark.parametrize("edit,field", [
    (lambda r: r.update(overrides=["max_side", 128]), "overrides"),
    (lambda r: r.update(profiles=[64]), "profiles[0]"),
    (lambda r: r.update(seed="0"), "seed"),
])
def test_export_json_schema_errors_name_file_and_field(build_copy, edit, field):
    import time

    from resvit_export.status import write_status

    record = json.loads((build_copy / "export.json").read_text())
    edit(record)
    (build_copy / "export.json").write_text(json.dumps(record))
    write_status(build_copy, "build", "PASSED", started=time.monotonic())  # consistent: only the schema is wrong
    res = _run(build_copy)
    assert res.exit_code == 6, res.output
    assert f"export.json: field {field}" in one_line(res.output) and "Traceback" not in res.output


# --- validate DIR --engine PLAN (issue #9) ------------------------------------------------------------------
# No TensorRT here: the full comparison runs with ONNX Runtime behind the engine runner interface
# (--runner, tests/validate/ort_engine_runner.py, given the deployed ONNX in place of the plan); everything
# else - the reference set's verification, the matrix, the verdict, the reports, the exit codes - is the
# code a TensorRT host runs.
STAND_IN = ["--runner", "ort_engine_runner:OrtEngineRunner"]


@pytest.fixture
def stand_in(monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "validate"))


def test_engine_parity_passes_and_breaches_with_the_stand_in_runner(build_copy, stand_in, monkeypatch):
    status_before = (build_copy / "status.json").read_bytes()
    engine = build_copy / "model.rewritten.onnx"
    res = _run(build_copy, "--engine", engine, *STAND_IN)
    assert res.exit_code == 0, res.output
    n = len(json.loads((build_copy / "reference.json").read_text())["cases"])
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("PASSED |") and f"fp32 engine parity PASSED: {n} cases (0 failed)" in last
    report = json.loads((build_copy / "parity.engine.json").read_text())
    assert report["passed"] and report["artifact"]["label"] == "engine" and len(report["cases"]) == n
    assert report["artifact"]["runtime"] == "ort_engine_runner.OrtEngineRunner"  # says what stood in
    assert all((build_copy / f"parity.engine.{ext}").is_file() for ext in ("md", "png", "junit.xml"))
    assert (build_copy / "status.json").read_bytes() == status_before  # the build's verdict is left alone
    monkeypatch.setenv("RESVIT_TEST_PERTURB", str(report["cases"][0]["h"]))
    res = _run(build_copy, "--engine", engine, *STAND_IN)
    assert res.exit_code == 3, res.output
    assert "ParityError: engine parity FAILED" in res.output and "exceeds atol" in res.output
    assert json.loads((build_copy / "parity.engine.json").read_text())["passed"] is False


def _engine_refusal(build_copy, *args, code):
    before = files_of(build_copy)
    res = _run(build_copy, *args)
    assert res.exit_code == code, res.output
    assert files_of(build_copy) == before  # refused before any work: nothing written, no lock left
    return one_line(res.output)


def test_engine_refusals_come_before_any_work(build_copy, stand_in, tmp_path):
    plan = tmp_path / "model.fp16.plan"
    assert "is not a file" in _engine_refusal(build_copy, "--engine", plan, code=6)
    plan.write_bytes(b"not opened: the refusals come first")
    assert "--onnx does not apply to --engine" in _engine_refusal(
        build_copy, "--engine", plan, "--onnx", build_copy / "model.onnx", code=2)
    assert "--runner applies to --engine only" in _engine_refusal(build_copy, *STAND_IN, code=2)
    status = _status(build_copy)
    (build_copy / "status.json").write_text(json.dumps({**status, "status": "FAILED", "exit_code": 3}))
    assert "says build FAILED" in _engine_refusal(build_copy, "--engine", plan, code=6)
    (build_copy / "status.json").write_text(json.dumps(status))
    with open(build_copy / "reference.npz", "ab") as f:
        f.write(b"\0")
    assert "reference.npz was modified" in _engine_refusal(build_copy, "--engine", plan, code=6)
    (build_copy / "reference.json").unlink()
    assert "reference.json does not exist" in _engine_refusal(build_copy, "--engine", plan, *STAND_IN, code=6)


def test_engine_check_without_tensorrt_is_exit_7_before_any_work(build_copy, tmp_path):
    from resvit_export._optional import is_available

    if is_available("tensorrt"):
        pytest.skip("TensorRT is importable here: the refusal cannot happen")
    plan = tmp_path / "model.fp16.plan"
    plan.write_bytes(b"never read: the runtime check comes first")
    line = _engine_refusal(build_copy, "--engine", plan, code=7)
    assert line.startswith("Error: MissingDependencyError:") and "TensorRT's Python bindings" in line
