"""The CPU deployment of a real export: every candidate tried and reported, the chosen graphs proven by the matrix.

Random weights here, so only fp32 is chosen and proven; INT8 accuracy is judged on trained weights only.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def vitar_build(tmp_path_factory):
    from resvit_export.export.onnx_export import export_onnx
    from resvit_export.graph.rewrite import RewriteContext, apply_rewrites
    from resvit_export.layout import BuildLayout
    from resvit_export.models import create_model, fit_to_profiles
    from resvit_export.profiles import parse_profile

    profiles = [parse_profile("64-448")]
    model = create_model("vitar_test", **fit_to_profiles("vitar_test", profiles, {}, runtime_if=True))
    layout = BuildLayout(tmp_path_factory.mktemp("cpu_build"))
    export_onnx(model, layout.onnx, profiles[0])
    apply_rewrites(layout.onnx, layout.rewritten_onnx, RewriteContext(profiles, patch_size=16))
    return model, layout, profiles


def test_cpu_deployment_tries_every_candidate_and_proves_the_winner(vitar_build):
    from resvit_export.cpu.candidates import CANDIDATE_NAMES
    from resvit_export.cpu.deploy import deploy_cpu, probe_sizes

    model, layout, profiles = vitar_build
    result = deploy_cpu(model, layout, profiles, deploy_onnx=layout.rewritten_onnx, raw_onnx=layout.onnx, int8=False)
    report = json.loads(layout.cpu_report.read_text())
    assert [c["name"] for c in report["fp32"]["candidates"]] == list(CANDIDATE_NAMES)
    assert all(c["note"] for c in report["fp32"]["candidates"])
    winner = next(c for c in report["fp32"]["candidates"] if c["name"] == report["fp32"]["winner"])
    assert winner["parity_passed"] and set(winner["latency_ms"]) == {"64x64", "176x176", "448x448"}
    assert probe_sizes(profiles) == [(64, 64), (176, 176), (448, 448)]
    assert set(report["fp32"]["also_timed_ms"]["pytorch-eager"]) == {"64x64", "176x176", "448x448"}
    assert layout.cpu_onnx("fp32").is_file() and not layout.cpu_onnx("int8").exists()
    parity = json.loads((layout.cpu_dir / "parity.json").read_text())
    assert result.parity["fp32"]["passed"] and parity["passed"]
    assert report["int8"] is None and "not measured" in report["int8_heldout_agreement"]
