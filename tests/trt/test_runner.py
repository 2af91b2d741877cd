"""Profile selection (one rule, host and device) and the host runner's import surface; running needs a GPU."""

import inspect

import numpy as np
import pytest

from resvit_export.bundle.device import profile_select
from resvit_export.errors import UsageError
from resvit_export.profiles import parse_batch, parse_profile
from resvit_export.trt.memory import ModelSpec
from resvit_export.trt.planner import plan_engine
from resvit_export.trt.runner import normalize_profiles, select_profile

PLAN = plan_engine([parse_profile("224-1792")], ModelSpec("deit", 384, 12, 6), batch=parse_batch("1-8@1"))


@pytest.mark.parametrize("shape,index", [
    ((1, 3, 224, 224), 0), ((8, 3, 512, 512), 0), ((1, 3, 513, 513), 1), ((1, 3, 1024, 1024), 1),
    ((4, 3, 1025, 300), 2), ((1, 3, 1792, 224), 2),  # off-diagonal shapes are covered by the nested layout
    ((1, 3, 224, 1000), 1),
])
def test_select_profile_picks_the_tightest_containing_profile(shape, index):
    assert select_profile(PLAN.profiles, shape) == index
    # the device rule on the (min, opt, max) tuples TensorRT reports gives the same answer
    assert profile_select.select_profile(normalize_profiles(PLAN.profiles), shape) == index


@pytest.mark.parametrize("shape", [(1, 3, 200, 224), (9, 3, 224, 224), (1, 3, 1800, 1800), (1, 4, 224, 224)])
def test_input_outside_every_profile_names_them(shape):
    with pytest.raises(UsageError) as info:
        select_profile(PLAN.profiles, shape)
    msg = str(info.value)
    assert "outside every optimization profile" in msg and "x".join(map(str, shape)) in msg
    for i in range(3):
        assert f"profile {i}:" in msg
    assert "1x3x224x224 .. 8x3x1792x1792" in msg


def test_device_rule_raises_value_error_for_rank_and_range():
    trt_style = [((1, 3, 224, 224), (1, 3, 336, 336), (1, 3, 512, 512)),
                 ((1, 3, 224, 224), (1, 3, 720, 720), (1, 3, 1024, 1024))]
    assert profile_select.select_profile(trt_style, (1, 3, 600, 600)) == 1
    with pytest.raises(ValueError, match="rank 3"):
        profile_select.select_profile(trt_style, (3, 224, 224))
    with pytest.raises(ValueError, match="1x3x2000x2000"):
        profile_select.select_profile(trt_style, (1, 3, 2000, 2000))


def test_tie_goes_to_the_first_smallest_profile():
    same = [((1, 3, 8, 8), (1, 3, 8, 8), (1, 3, 16, 16))] * 2
    assert profile_select.select_profile(same, (1, 3, 10, 10)) == 0


def test_select_profile_accepts_tuples_and_dicts():
    dicts = [p.to_dict() for p in PLAN.profiles]
    assert select_profile(dicts, (1, 3, 300, 300)) == 0
    assert normalize_profiles(dicts)[2] == ((1, 3, 224, 224), (1, 3, 1360, 1360), (8, 3, 1792, 1792))
    assert normalize_profiles(dicts) == normalize_profiles(PLAN.profiles)
    with pytest.raises(UsageError, match="rank"):
        select_profile(dicts, (3, 224, 224))


def test_host_and_device_share_one_rule_file():
    """The host imports the very file the bundle ships; the device runner uses nothing else to choose."""
    import resvit_export.trt.runner as host
    from resvit_export.bundle.bundle import DEVICE_FILES
    from resvit_export.bundle.device import run_engine

    assert host.profile_select is profile_select and "profile_select.py" in DEVICE_FILES
    assert run_engine.select_profile is profile_select.select_profile
    assert "select_profile(self.profiles" in inspect.getsource(run_engine.EngineRunner.infer)


def test_runner_modules_import_without_tensorrt():
    import sys

    import resvit_export.trt.runner as runner
    from resvit_export.bundle.device import run_engine

    assert hasattr(runner, "EngineRunner") and hasattr(run_engine, "EngineRunner")
    assert "tensorrt" not in sys.modules


def test_host_runner_refuses_a_missing_plan(tmp_path):
    from resvit_export.errors import InvalidArtifactError
    from resvit_export.trt.runner import EngineRunner

    with pytest.raises(InvalidArtifactError, match="does not exist"):
        EngineRunner(tmp_path / "nope.plan")


@pytest.mark.trt
def test_engine_runner_switches_profiles(tmp_path):  # pragma: no cover - needs TensorRT + GPU
    import torch

    from resvit_export.export.onnx_export import export_onnx
    from resvit_export.models import create_model
    from resvit_export.trt.builder import build_engines
    from resvit_export.trt.runner import EngineRunner

    model = create_model("deit_test")
    prof = parse_profile("224-768")
    export_onnx(model, tmp_path / "model.onnx", prof)
    plan = plan_engine([prof], ModelSpec.from_model(model), precision="fp32")
    engines = build_engines(tmp_path / "model.onnx", plan, tmp_path, timing_cache=tmp_path / "timing.cache")
    runner = EngineRunner(engines[0])
    for side in (224, 640):
        x = torch.randn(1, 3, side, side)
        out = runner.infer(x.numpy())["logits"]
        ref = model(x).detach().numpy()
        assert np.allclose(out, ref, atol=1e-3)
    assert runner.active_profile == 1
    runner.close()
