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
    # trained reference weights: the INT8 forms are made, and each is gated on held-out top-1 agreement
    from resvit_export.cpu.deploy import probe_sizes
    from resvit_export.models import create_model
    from resvit_export.profiles import parse_profile
    from resvit_export.reference.checkpoints import weights_path

    out = tmp_path / "b"
    result = _build("rivit_test", "--profile", "64-128", "--target", "cpu", "--weights", weights_path("rivit_test"),
                    "-o", out)
    assert result.exit_code == 0, result.output
    status = json.loads((out / "status.json").read_text())["details"]
    steps = {s["name"]: s for s in status["steps"]}
    assert list(steps) == ["export", "rewrite", "lint", "validate", "cpu", "plan", "engine", "engine-parity",
                           "manifest"]
    assert {steps[n]["status"] for n in ("lint", "plan", "engine", "engine-parity")} == {"SKIPPED"}
    assert steps["cpu"]["status"] == "PASSED"
    assert {"cpu/model.onnx", "cpu/cpu.json", "cpu/parity.json"} <= set(steps["cpu"]["artifacts"])
    report = json.loads((out / "cpu" / "cpu.json").read_text())
    assert report["parity"]["fp32"]["passed"] and not (out / "plan.json").exists()
    int8_rows = report["int8"]["candidates"] if report["int8"] else []
    for row in int8_rows:  # a form is refused only for its agreement, and then never timed
        assert row["rejected"] is None or ("held-out top-1 agreement" in row["rejected"] and not row["latency_ms"])
    sizes = probe_sizes([parse_profile("64-128")], create_model("rivit_test").size_rule.patch_size)
    # every form was judged one image per call, the default --batch's opt (dynamic INT8 depends on batch-mates)
    assert report["int8_agreement_by_graph"] and all(
        a["batch"] == 1 for a in report["int8_agreement_by_graph"].values())
    if report["int8"] is not None:
        agreement = report["int8_heldout_agreement"]
        assert agreement["passed"] and agreement["worst"] >= 0.99 and report["parity"]["int8"]["passed"]
        assert set(agreement["per_size"]) == {f"{h}x{w}" for h, w in sizes}
        assert (out / "cpu" / "model.int8.onnx").is_file() and "cpu/model.int8.onnx" in steps["cpu"]["artifacts"]
    else:  # every form fell short: fp32 only, and the reason in cpu.json and the step's line
        assert "held-out top-1 agreement" in report["int8_refused"] and "no INT8 form" in steps["cpu"]["detail"]
        by_graph = report["int8_agreement_by_graph"]  # what was measured is kept, not only the refusal
        assert by_graph and not any(a["passed"] for a in by_graph.values())
        assert all(set(a["per_size"]) == {f"{h}x{w}" for h, w in sizes} for a in by_graph.values())
        assert not (out / "cpu" / "model.int8.onnx").exists()


def test_reference_run_of_matches_weights_by_model_and_hash():
    from resvit_export.cpu.accuracy import reference_run_of
    from resvit_export.reference.checkpoints import weights_path

    assert reference_run_of("rivit_test", weights_path("rivit_test")) == "rivit_test"
    assert reference_run_of("vitar_test", weights_path("rivit_test")) is None  # another model's file
    assert reference_run_of("deit_test", weights_path("deit_test_random_size")) == "deit_test_random_size"
    assert reference_run_of("deit_test", None) is None


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


def test_gated_vitar_also_tries_its_always_compute_form_on_the_cpu(tmp_path):
    # gating saves FLOPs but ORT runs each If branch as a subgraph: which form is faster is measured, not assumed
    out = tmp_path / "v"
    result = _build("vitar_test", "--profile", "64-256", "--target", "cpu", "-o", out)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "status.json").read_text())["details"]["overrides"]["atm_gate"] is True
    rows = {c["name"]: c for c in json.loads((out / "cpu" / "cpu.json").read_text())["fp32"]["candidates"]}
    assert rows["always-compute"]["parity_passed"] and rows["always-compute"]["latency_ms"]
    assert rows["tensorrt-graph"]["parity_passed"]  # the gated graph, the baseline
