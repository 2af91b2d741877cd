"""select_profile (pure) and the engine runner (TensorRT + GPU only)."""

import pytest

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


@pytest.mark.parametrize("shape", [(1, 3, 200, 224), (9, 3, 224, 224), (1, 3, 1800, 1800), (1, 4, 224, 224)])
def test_input_outside_every_profile_names_them(shape):
    with pytest.raises(UsageError) as info:
        select_profile(PLAN.profiles, shape)
    msg = str(info.value)
    assert "outside every optimization profile" in msg
    for i in range(3):
        assert f"profile {i}:" in msg
    assert "1x3x224x224 .. 8x3x1792x1792" in msg


def test_select_profile_accepts_tuples_and_dicts():
    trt_style = [((1, 3, 224, 224), (1, 3, 336, 336), (1, 3, 512, 512)),
                 ((1, 3, 224, 224), (1, 3, 720, 720), (1, 3, 1024, 1024))]
    assert select_profile(trt_style, (1, 3, 600, 600)) == 1
    dicts = [p.to_dict() for p in PLAN.profiles]
    assert select_profile(dicts, (1, 3, 300, 300)) == 0
    assert normalize_profiles(dicts)[2] == ((1, 3, 224, 224), (8, 3, 1792, 1792))
    with pytest.raises(UsageError, match="rank"):
        select_profile(trt_style, (3, 224, 224))


def test_runner_module_imports_without_tensorrt():
    import resvit_export.trt.runner as runner

    assert hasattr(runner, "EngineRunner")


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
        out = runner(x)["logits"].cpu()
        ref = model(x)
        assert torch.allclose(out, ref, atol=1e-3)
    assert runner.active_profile == 1
