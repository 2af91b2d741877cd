"""`resvit-export build --target cpu`: the CPU deployment as a build step, and what it refuses before any work."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from resvit_export.cli.main import cli

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _build(*args):
    return CliRunner().invoke(cli, ["build", *map(str, args)], catch_exceptions=False)


def test_build_target_cpu_writes_the_cpu_folder_and_runs_no_tensorrt_step(tmp_path):
    out = tmp_path / "b"
    result = _build("rivit_test", "--profile", "64-128", "--target", "cpu", "-o", out)
    assert result.exit_code == 0, result.output
    status = json.loads((out / "status.json").read_text())["details"]
    steps = {s["name"]: s for s in status["steps"]}
    assert list(steps) == ["export", "rewrite", "lint", "validate", "cpu", "plan", "engine", "manifest"]
    assert {steps[n]["status"] for n in ("lint", "plan", "engine")} == {"SKIPPED"}
    assert steps["cpu"]["status"] == "PASSED" and "no INT8 CPU graph" in steps["cpu"]["detail"]
    assert {"cpu/model.onnx", "cpu/cpu.json", "cpu/parity.json"} <= set(steps["cpu"]["artifacts"])
    report = json.loads((out / "cpu" / "cpu.json").read_text())
    assert report["parity"]["fp32"]["passed"] and report["int8"] is None and "random init" in report["notes"][0]
    assert not (out / "cpu" / "model.int8.onnx").exists() and not (out / "plan.json").exists()


@pytest.mark.parametrize("extra, needle", [
    (["--precision", "fp16"], "--precision fp16 makes a TensorRT graph"),
    (["--device", "orin-nano"], "--device/--memory-budget size TensorRT engines"),
    (["--target", "jetpack8"], "'jetpack8' is not one of"),
])
def test_build_target_cpu_refuses_tensorrt_only_options_before_any_work(tmp_path, extra, needle):
    result = _build("rivit_test", "--profile", "64-128", "--target", "cpu", *extra, "-o", tmp_path / "b")
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and needle in lines[0], result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("targets, gated", [(["trt11"], True), (["cpu"], True), (["jetpack7", "cpu"], True),
                                            (["jetpack6"], False), (["jetpack6", "cpu"], False)])
def test_vitar_is_gated_only_when_every_target_runs_a_runtime_shaped_if(tmp_path, targets, gated):
    from resvit_export.pipeline import BuildOptions
    from resvit_export.profiles import parse_profile

    checked = BuildOptions([parse_profile("64-448")], tmp_path / "b", model="vitar_test", targets=targets).validate()
    assert checked.model.overrides.get("atm_gate", False) is gated
    assert checked.model.model.cfg.atm_gate is gated and not (tmp_path / "b").exists()
