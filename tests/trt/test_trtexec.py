"""trtexec lines in TensorRT 10 and 11 syntax (exact strings for a known plan) and trtexec.sh."""

import subprocess

import pytest

from resvit_export.errors import UsageError
from resvit_export.profiles import parse_batch, parse_profile
from resvit_export.trt.memory import ModelSpec
from resvit_export.trt.planner import plan_engine
from resvit_export.trt.trtexec import build_command, run_commands, trtexec_commands, write_trtexec_script

SPEC = ModelSpec("deit", 384, 12, 6, name="deit_s")
SHAPES = ("--profile=0 --minShapes=pixels:1x3x224x224 --optShapes=pixels:1x3x336x336 --maxShapes=pixels:8x3x512x512 "
          "--profile=1 --minShapes=pixels:1x3x224x224 --optShapes=pixels:1x3x720x720 --maxShapes=pixels:8x3x1024x1024")


def make_plan(precision="fp16"):
    return plan_engine([parse_profile("224-1024")], SPEC, batch=parse_batch("1-8@1"), precision=precision)


def test_trt10_fp16_weak_typing_exact():
    line = build_command(make_plan(), "model.onnx", 10, workspace_mib=2048, builder_optimization_level=3)
    assert line == ("trtexec --onnx=model.onnx --saveEngine=model.fp16.plan " + SHAPES +
                    " --fp16 --timingCacheFile=timing.cache --memPoolSize=workspace:2048M "
                    "--builderOptimizationLevel=3 --skipInference")


def test_trt10_strongly_typed_when_onnx_carries_precision():
    line = build_command(make_plan(), "model.fp16.onnx", 10, timing_cache=None)
    assert line == "trtexec --onnx=model.fp16.onnx --saveEngine=model.fp16.plan " + SHAPES + " --stronglyTyped --skipInference"
    line = build_command(make_plan("int8"), "out/model.int8.onnx", 10)
    assert "--stronglyTyped" in line and "--int8" not in line and "--fp16" not in line


def test_trt10_int8_implicit_calibration():
    line = build_command(make_plan("int8"), "model.onnx", 10, calib_cache="calib.cache")
    assert line.endswith("--int8 --fp16 --calib=calib.cache --timingCacheFile=timing.cache --skipInference")
    with pytest.raises(UsageError, match="calibration cache"):
        build_command(make_plan("int8"), "model.onnx", 10)


def test_trt11_exact_and_refusals():
    line = build_command(make_plan(), "model.fp16.onnx", 11)
    assert line == ("trtexec --onnx=model.fp16.onnx --saveEngine=model.fp16.plan " + SHAPES +
                    " --timingCacheFile=timing.cache --skipInference")
    for flag in ("--fp16", "--int8", "--calib", "--stronglyTyped"):
        assert flag not in line
    with pytest.raises(UsageError, match="model.fp16.onnx"):
        build_command(make_plan(), "model.onnx", 11)
    with pytest.raises(UsageError, match="--calib"):
        build_command(make_plan("int8"), "model.int8.onnx", 11, calib_cache="c.cache")
    with pytest.raises(UsageError, match="carries int8"):
        build_command(make_plan("fp16"), "model.int8.onnx", 11)
    with pytest.raises(UsageError, match="10 or 11"):
        build_command(make_plan(), "model.onnx", 9)
    with pytest.raises(UsageError, match="0..5"):
        build_command(make_plan(), "model.onnx", 10, builder_optimization_level=7)


def test_single_profile_has_no_profile_flag_and_quotes_paths():
    plan = plan_engine([parse_profile("448-448")], SPEC, precision="fp32")
    line = build_command(plan, "my dir/model.onnx", 11)
    assert "--profile=" not in line and "--onnx='my dir/model.onnx'" in line
    assert "--minShapes=pixels:1x3x448x448 --optShapes=pixels:1x3x448x448 --maxShapes=pixels:1x3x448x448" in line


def test_run_lines_select_each_profile_with_use_profile():
    # --useProfile, not --profile: trtexec 10.3/10.13/11.1 read --profile as a build option and reject it when no
    # shape flags follow (research tensorrt-verified.md B1; tests/conformance parses these lines per version).
    assert run_commands(make_plan()) == [
        "trtexec --loadEngine=model.fp16.plan --useProfile=0 --shapes=pixels:1x3x336x336",
        "trtexec --loadEngine=model.fp16.plan --useProfile=1 --shapes=pixels:1x3x720x720",
    ]
    assert len(trtexec_commands(make_plan(), "model.fp16.onnx", 11)) == 3


def test_trtexec_script_is_valid_bash_with_both_syntaxes(tmp_path):
    path = write_trtexec_script(make_plan(), "model.onnx", tmp_path / "trtexec.sh")
    subprocess.run(["bash", "-n", str(path)], check=True)
    text = path.read_text()
    assert '  10)\n    "$TRTEXEC" --onnx=model.onnx' in text and "--fp16" in text
    assert "cannot build on TensorRT 11" in text and "model.fp16.onnx" in text  # 11 needs the FP16 ONNX
    assert path.stat().st_mode & 0o100


def test_trtexec_script_runs_the_chosen_branch(tmp_path):
    fake = tmp_path / "trtexec"
    fake.write_text('#!/usr/bin/env bash\necho "ARGS: $*"\n')
    fake.chmod(0o755)
    path = write_trtexec_script(make_plan(), "model.fp16.onnx", tmp_path / "trtexec.sh")
    for major, expect in (("10", "--stronglyTyped"), ("11", "--timingCacheFile")):
        out = subprocess.run(["bash", str(path)], env={"PATH": "/usr/bin:/bin", "TRT_MAJOR": major,
                                                       "TRTEXEC": str(fake)}, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert expect in out.stdout and "--onnx=model.fp16.onnx" in out.stdout
    out = subprocess.run(["bash", str(path)], env={"PATH": "/usr/bin:/bin", "TRT_MAJOR": "9", "TRTEXEC": str(fake)},
                         capture_output=True, text=True)
    assert out.returncode == 3 and "TRT_MAJOR=10 or 11" in out.stderr
