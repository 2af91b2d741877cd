"""Engine parity, proven here without TensorRT: build -> bundle -> extract into a "device" directory -> run the
bundle's check_engine.py in a Python where torch (and resvit_export, and Polygraphy) cannot be imported, with
ONNX Runtime standing in for the engine runner (the only line that differs from a Jetson)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from resvit_export.bundle.bundle import SUMS_NAME, create_bundle, extract_bundle
from resvit_export.bundle.device import check_engine
from resvit_export.bundle.device.reference_set import ReferenceError, ReferenceSet, sha256_of
from resvit_export.errors import ParityError
from resvit_export.layout import BuildLayout
from resvit_export.pipeline import BuildOptions, build
from resvit_export.profiles import parse_profile
from resvit_export.validate.parity import ParityReport

RUNNER = Path(__file__).with_name("ort_engine_runner.py")
ENGINE = "model.fp16.onnx"  # the ORT stand-in runs the FP16 ONNX where the device runs model.fp16.plan
# what a device has: numpy, the runner's libraries and the bundle; nothing of the workstation's stack
DEVICE_PYTHON = ("import sys, runpy; [sys.modules.__setitem__(m, None) for m in ('torch', 'resvit_export', "
                 "'polygraphy', 'onnx')]; sys.argv = ['check_engine.py'] + sys.argv[1:]; "
                 "runpy.run_path('check_engine.py', run_name='__main__')")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("engine_check") / "build"
    build(BuildOptions(profiles=[parse_profile("32-128")], out_dir=out, model="vitar_test", precision="fp16"))
    return out


@pytest.fixture
def device(built, tmp_path):
    info = create_bundle(built, tmp_path / "bundle.tar.gz")
    assert {"reference.json", "reference.npz", "check_engine.py", "parity_core.py", "parity_inputs.py",
            "reference_set.py"} <= set(info.files)
    dest = extract_bundle(info.path, tmp_path / "device")
    shutil.copy(RUNNER, dest)
    return dest


def run_device(dest: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-c", DEVICE_PYTHON, ENGINE, "--runner", "ort_engine_runner:OrtEngineRunner",
                           "--precision", "fp16", *args], cwd=dest, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def _one_line(res: subprocess.CompletedProcess) -> str:
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1, res.stdout + res.stderr
    return lines[0]


def test_device_check_passes_over_the_full_matrix(built, device):
    res = run_device(device)
    line = _one_line(res)
    assert res.returncode == 0, line + res.stderr
    reference = json.loads((device / "reference.json").read_text())
    n = len(reference["cases"])
    assert line.startswith("PASSED |") and f"fp16 engine parity PASSED: {n} cases (0 failed)" in line
    report = json.loads((device / "parity.engine.json").read_text())
    assert report["passed"] is True and len(report["cases"]) == n and not report["skipped"]
    # the engine's profiles stop at batch 1 (plan.json), so batch-2 cases ran row by row, and say so
    b2 = {c["name"] for c in reference["cases"] if c["batch"] == 2}
    assert b2 and {s["name"] for s in report["split"]} == b2
    # the same schema as the workstation's parity.json, rendered by the same code
    host = json.loads((built / "parity.fp16.json").read_text())
    assert report.keys() == host.keys() and report["cases"][0].keys() == host["cases"][0].keys()
    assert "# Parity PASSED" in (device / "parity.engine.md").read_text()
    assert 'failures="0"' in (device / "parity.engine.junit.xml").read_text()
    # regenerated inputs + the numpy metrics reproduce the workstation's ONNX Runtime fp16 numbers exactly
    host_cases = {(c["name"], c["input"]): c for c in host["cases"]}
    for c in report["cases"]:
        if c["batch"] == 1:  # (batch-2 cases ran as rows here, a different ORT batch)
            h = host_cases[(c["name"], c["input"])]
            assert (c["max_abs"], c["cosine"], c["top1_rows"]) == (h["max_abs"], h["cosine"], h["top1_rows"])


def test_a_perturbed_engine_output_fails_with_exit_3(device):
    reference = json.loads((device / "reference.json").read_text())
    h = reference["cases"][5]["h"]
    res = run_device(device, env={"RESVIT_TEST_PERTURB": str(h)})
    line = _one_line(res)
    assert res.returncode == 3 and line.startswith("FAILED |")
    assert "cases breach" in line and "exceeds atol" in line and ", logits[3])" in line
    report = json.loads((device / "parity.engine.json").read_text())
    assert not report["passed"] and all(not c["passed"] for c in report["cases"] if c["h"] == h)


def test_a_tampered_reference_output_is_refused(device):
    with np.load(device / "reference.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["case0_out0"][0, 0] += 1.0
    with open(device / "reference.npz", "wb") as f:
        np.savez(f, **arrays)
    res = run_device(device)
    assert res.returncode == 6 and "reference.npz was modified" in _one_line(res)
    assert not (device / "parity.engine.json").exists()


def _edit_reference(device: Path, edit) -> None:
    meta = json.loads((device / "reference.json").read_text())
    edit(meta)
    (device / "reference.json").write_text(json.dumps(meta))


def test_an_edited_reference_json_fails_the_bundle_sums(device):
    _edit_reference(device, lambda m: m["cases"][0].update(seed=m["cases"][0]["seed"] + 1))
    res = run_device(device)
    assert res.returncode == 6 and "reference.json does not match SHA256SUMS" in _one_line(res)


def test_an_input_that_does_not_reproduce_its_hash_is_an_error(device):
    # as if this machine's numpy regenerated a different array: the recorded hash no longer matches
    _edit_reference(device, lambda m: m["cases"][3].update(input_sha256="0" * 64))
    sums = (device / SUMS_NAME).read_text().replace(
        next(ln for ln in (device / SUMS_NAME).read_text().splitlines() if ln.endswith("  reference.json")),
        f"{sha256_of(str(device / 'reference.json'))}  reference.json")
    (device / SUMS_NAME).write_text(sums)
    res = run_device(device)
    line = _one_line(res)
    assert res.returncode == 6
    assert "regenerated on this machine" in line and "the reference recorded 000000000000" in line


def test_cases_that_do_not_fit_in_memory_are_skipped_not_a_crash(device):
    res = run_device(device, env={"RESVIT_TEST_OOM_ABOVE": str(100 * 100)})
    line = _one_line(res)
    report = json.loads((device / "parity.engine.json").read_text())
    skipped = report["skipped"]
    assert res.returncode == 0 and skipped and f"{len(skipped)} skipped" in line
    assert all(s["h"] * s["w"] > 100 * 100 and "does not fit in this device's memory" in s["reason"] for s in skipped)
    assert len(report["cases"]) + len(skipped) == len(json.loads((device / "reference.json").read_text())["cases"])
    assert "## Skipped cases" in (device / "parity.engine.md").read_text()


def test_usage_errors_are_one_line_with_their_own_codes(device):
    res = subprocess.run([sys.executable, "check_engine.py", "missing.plan"], cwd=device, capture_output=True,
                         text=True)
    assert res.returncode == 2 and "engine missing.plan does not exist" in _one_line(res)
    res = run_device(device, "--reference", "nowhere/reference.json")
    assert res.returncode == 6 and "does not exist" in _one_line(res)
    res = subprocess.run([sys.executable, "check_engine.py", ENGINE], cwd=device, capture_output=True, text=True)
    assert res.returncode == 7 and "runner run_engine:EngineRunner cannot" in _one_line(res)  # no TensorRT here


def test_host_library_entry_writes_engine_reports(built, device, tmp_path, monkeypatch):
    sys.path.insert(0, str(device))
    try:
        from ort_engine_runner import OrtEngineRunner
    finally:
        sys.path.remove(str(device))
    from resvit_export.validate.engine import validate_engine

    report = validate_engine(device / ENGINE, built, runner=OrtEngineRunner(device / ENGINE), out_dir=tmp_path)
    assert isinstance(report, ParityReport) and report.passed, report.failure_line()
    assert report.summary_line().startswith("fp16 engine parity PASSED")
    paths = [BuildLayout(tmp_path).engine_parity(ext) for ext in ("json", "md", "png", "junit.xml")]
    assert all(p.is_file() for p in paths)
    monkeypatch.setenv("RESVIT_TEST_PERTURB", str(report.cases[0].h))
    bad = validate_engine(device / ENGINE, built, runner=OrtEngineRunner(device / ENGINE), out_dir=tmp_path)
    assert not bad.passed and "breach" in bad.failure_line()


def test_device_names_match_the_layout():
    layout = BuildLayout("/x")
    assert check_engine.REFERENCE_NAME == layout.reference_set.name
    assert check_engine.report_names("/x")["json"] == str(layout.engine_parity("json"))


def test_shipped_inputs_and_generator_version(tmp_path):
    from resvit_export.validate.inputs import make_inputs
    from resvit_export.validate.reference import ReferenceEntry, write_reference_set

    x = make_inputs("synthetic", 1, 40, 56, 9)
    entry = ReferenceEntry("min-40x56-b1", "min", "synthetic", 1, 40, 56, 6, 9, x, [np.ones((1, 5), np.float32)])
    kw = dict(model="m", profiles=["32-64"], input_name="pixels", output_names=["logits"], seed=0, precision="fp32",
              tolerances={"atol": 1e-4, "rtol": 1e-3, "cos_min": 0.99999, "top1_min": 1.0})
    info = write_reference_set(tmp_path, [entry], ship_inputs=True, **kw)
    assert [p.name for p in info.files] == ["reference.json", "reference.npz", "reference.inputs.npz"]
    ref = ReferenceSet(str(tmp_path / "reference.json"))
    assert np.array_equal(ref.input(0), x) and ref.tolerances("fp32")["atol"] == 1e-4
    # without shipped inputs the stale file goes, and a set made by another generator version is refused
    write_reference_set(tmp_path, [entry], **kw)
    assert not (tmp_path / "reference.inputs.npz").exists()
    _edit_reference(tmp_path, lambda m: m.update(generator_version=1))
    with pytest.raises(ReferenceError, match="generator version 1"):
        ReferenceSet(str(tmp_path / "reference.json"))


def test_build_engine_parity_step_defers_without_an_engine_and_runs_each_engine(built, tmp_path, monkeypatch):
    """The build's engine-parity step: DEFERRED where no engine was built (this machine), never PASSED without
    running; given an engine, validate_engine on the build's reference set - here with ONNX Runtime behind the
    runner interface and the FP16 ONNX in the engine's place (only the runner differs from a TensorRT host)."""
    from resvit_export.pipeline import BuildState, _step_engine_parity

    steps = {s["name"]: s for s in json.loads((built / "status.json").read_text())["details"]["steps"]}
    assert steps["engine"]["status"] == "DEFERRED"
    assert steps["engine-parity"]["status"] == "DEFERRED" and "not run" in steps["engine-parity"]["detail"]
    detail = steps["engine-parity"]["detail"]
    assert "reference set 0." in detail and "; model.fp16.onnx " in detail  # its size against the ONNX's
    out = tmp_path / "build"
    shutil.copytree(built, out)
    opts = BuildOptions(profiles=[parse_profile("32-128")], out_dir=out, model="vitar_test", precision="fp16")
    state = BuildState(model=None, engines=[out / ENGINE])
    monkeypatch.syspath_prepend(str(RUNNER.parent))
    status, detail, files = _step_engine_parity(opts, BuildLayout(out), state, runner_spec="ort_engine_runner:"
                                                                                           "OrtEngineRunner")
    n = len(json.loads((out / "reference.json").read_text())["cases"])
    assert status == "PASSED" and f"{ENGINE}: fp16 engine parity PASSED: {n} cases" in detail
    assert "reference: PyTorch" in detail and detail.endswith("eager FP32 on cpu")  # which device made it
    assert files == [f"parity.engine.{ext}" for ext in ("json", "md", "png", "junit.xml")] + [f"{ENGINE}.check.json"]
    assert json.loads((out / f"{ENGINE}.check.json").read_text())["status"] == "PASSED"
    monkeypatch.setenv("RESVIT_TEST_PERTURB", str(json.loads((out / "reference.json").read_text())["cases"][0]["h"]))
    with pytest.raises(ParityError, match=f"engine {ENGINE} parity FAILED: .* breach"):
        _step_engine_parity(opts, BuildLayout(out), state, runner_spec="ort_engine_runner:OrtEngineRunner")


def _device_tools(tmp_path: Path) -> dict:
    """The environment build_engine.sh runs in here: the tests' stand-in trtexec (records its arguments and
    writes a placeholder file; it builds nothing), a "device" python where torch, resvit_export, Polygraphy and
    onnx cannot be imported, and the ORT stand-in as the check's runner (it runs the ONNX the placeholder's
    sidecar names: the only line that differs from a Jetson)."""
    import os

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "trtexec").write_text('#!/usr/bin/env bash\nfor a in "$@"; do case "$a" in --saveEngine=*) '
                                    'echo plan > "${a#--saveEngine=}";; esac; done\necho "TRTEXEC $*" >> trtexec.log\n')
    (bindir / "device-python").write_text(f'#!/usr/bin/env bash\nshift\nexec {sys.executable} -c "{DEVICE_PYTHON}" '
                                          '"$@"\n')  # drops "check_engine.py": DEVICE_PYTHON runs it
    for f in bindir.iterdir():
        f.chmod(0o755)
    return {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "TRT_MAJOR": "10",
            "PYTHON": str(bindir / "device-python"), "CHECK_RUNNER": "ort_engine_runner:OrtEngineRunner"}


def _inspect(target: Path):
    from click.testing import CliRunner

    from resvit_export.cli.main import cli

    return CliRunner().invoke(cli, ["inspect", str(target)], catch_exceptions=False)


def test_build_engine_sh_checks_the_engine_and_inspect_shows_the_verdict(device, tmp_path):
    env = _device_tools(tmp_path)
    n = len(json.loads((device / "reference.json").read_text())["cases"])
    res = subprocess.run(["bash", "build_engine.sh"], cwd=device, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"PASSED | " in res.stdout and f"fp16 engine parity PASSED: {n} cases (0 failed)" in res.stdout
    assert "--saveEngine=model.fp16.plan.partial" in (device / "trtexec.log").read_text()
    assert (device / "model.fp16.plan").read_text() == "plan\n"  # the stand-in's placeholder: no engine claimed
    record = json.loads((device / "model.fp16.plan.check.json").read_text())
    assert record["status"] == "PASSED" and record["cases"] == n and record["runtime"].startswith("ort_engine_runner")
    assert record["engine_sha256"] == sha256_of(str(device / "model.fp16.plan"))
    for target in (device, device / "model.fp16.plan"):
        out = _inspect(target)
        assert out.exit_code == 0, out.output
        assert f"model.fp16.plan: engine parity: PASSED {n}/{n} (worst cos " in out.output
        assert "model.fp16.plan: built on this device by build_engine.sh from model.fp16.onnx" in out.output
    from click.testing import CliRunner

    from resvit_export.cli.main import cli

    found = json.loads(CliRunner().invoke(cli, ["inspect", str(device), "--json"]).output)
    assert found["engine_parity"]["model.fp16.plan"].startswith(f"engine parity: PASSED {n}/{n}")
    assert found["device_built"]["model.fp16.plan"]["built_by"] == "build_engine.sh"

    # a breach: exit 3, the engine stays, and inspect shows the failure
    h = json.loads((device / "reference.json").read_text())["cases"][0]["h"]
    res = subprocess.run(["bash", "build_engine.sh"], cwd=device, env={**env, "RESVIT_TEST_PERTURB": str(h)},
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 3 and "parity check did not pass (exit 3" in res.stderr, res.stdout + res.stderr
    assert (device / "model.fp16.plan").is_file()
    assert f"engine parity: FAILED " in _inspect(device).output and "cases breach" in _inspect(device).output

    # --no-check: built, not checked, and no verdict of the previous engine is left to describe it
    res = subprocess.run(["bash", "build_engine.sh", "--no-check"], cwd=device, env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0 and "engine parity not checked (--no-check)" in res.stdout, res.stdout + res.stderr
    assert not (device / "model.fp16.plan.check.json").exists()
    assert "model.fp16.plan: engine parity: not checked (no model.fp16.plan.check.json" in _inspect(device).output
    res = subprocess.run(["bash", "build_engine.sh", "--fast"], cwd=device, env=env, capture_output=True, text=True)
    assert res.returncode == 2 and "unknown option --fast" in res.stderr


def test_a_check_that_cannot_run_is_recorded_as_not_checked(device, tmp_path):
    # the default runner needs TensorRT: exit 7, recorded, and inspect says why nothing was compared
    (device / "model.fp16.plan").write_text("plan\n")
    res = subprocess.run([sys.executable, "check_engine.py", "model.fp16.plan"], cwd=device, capture_output=True,
                         text=True)
    assert res.returncode == 7
    out = _inspect(device).output
    assert "model.fp16.plan: engine parity: not checked (check_engine.py exit 7: FAILED |" in out
    record = json.loads((device / "model.fp16.plan.check.json").read_text())
    (device / "model.fp16.plan.check.json").write_text(json.dumps({**record, "cases": 3}))  # edited by hand
    assert "model.fp16.plan.check.json lacks or mangles 'failed'" in _inspect(device).output
    (device / "model.fp16.plan").write_text("rebuilt\n")  # the record no longer describes this file
    assert "describes another engine file" in _inspect(device).output


def test_cases_outside_the_engines_profiles_are_skipped_with_the_reason(device):
    # an engine built for a narrower range than the reference set (as the device's memory may force): the cases
    # it cannot hold are listed as skipped with the reason (profile_select's answer), the rest still compared
    plan = json.loads((device / "plan.json").read_text())
    for p in plan["profiles"]:
        p["shapes"]["max"] = p["shapes"]["max"][:2] + [64, 64]
        p["shapes"]["opt"] = p["shapes"]["min"]
    (device / "plan.json").write_text(json.dumps(plan))
    res = run_device(device)
    line = _one_line(res)
    report = json.loads((device / "parity.engine.json").read_text())
    assert res.returncode == 0 and report["cases"] and f"{len(report['skipped'])} skipped" in line, line + res.stderr
    assert all(max(s["h"], s["w"]) > 64 and "lies outside the engine's profiles" in s["reason"]
               for s in report["skipped"])
    assert all(max(c["h"], c["w"]) <= 64 for c in report["cases"])
