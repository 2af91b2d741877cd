"""Builder: the settings, the CreateConfig arguments and the progress display, all without TensorRT.

The build itself needs TensorRT + a GPU (marked ``trt``); tests/conformance runs this module's TensorRT-facing
code against the real bindings of 10.3, 10.13 and 11.4 up to the point where nothing can be built.
"""

import threading

import pytest

from resvit_export._optional import is_available
from resvit_export.errors import InvalidArtifactError, MissingDependencyError, UsageError
from resvit_export.profiles import parse_batch, parse_profile
from resvit_export.trt.builder import ProgressState, build_engines, build_settings, create_config_kwargs
from resvit_export.trt.memory import ModelSpec
from resvit_export.trt.planner import plan_engine

SPEC = ModelSpec("deit", 32, 2, 2)
PLAN = plan_engine([parse_profile("224-512")], SPEC, precision="fp32")
PLAN3 = plan_engine([parse_profile("224-1792")], SPEC, batch=parse_batch("1-8@1"), precision="fp16")


def test_module_imports_without_tensorrt_and_defines_no_trt_class_at_import():
    import sys

    import resvit_export.trt.builder as b

    assert not any(getattr(v, "__module__", "") == "tensorrt" for v in vars(b).values())
    assert callable(b.make_progress_monitor) and "tensorrt" not in sys.modules


def test_settings_carry_every_profile_in_plan_order():
    s = build_settings(PLAN3, "fp16", "10.3.0", workspace_bytes=1 << 30, timing_cache="t.cache")
    assert s.input_name == "pixels" and len(s.profiles) == 3
    assert s.profiles == tuple((tuple(p.shapes()["min"]), tuple(p.shapes()["opt"]), tuple(p.shapes()["max"]))
                               for p in PLAN3.profiles)
    assert s.profiles[2][2] == (8, 3, 1792, 1792) and s.workspace_bytes == 1 << 30
    assert s.strongly_typed and not s.fp16_flag  # the FP16 ONNX carries its precision


@pytest.mark.parametrize("version,onnx_prec,strongly_typed,fp16_flag", [
    ("10.3.0", "fp32", False, True),    # weak typing: BuilderFlag.FP16 on the FP32 ONNX
    ("10.13.3", "fp16", True, False),   # strongly typed FP16 ONNX
    ("11.4.0", "fp16", False, False),   # 11 is always strongly typed; STRONGLY_TYPED is a deprecated no-op
])
def test_precision_decision_per_version(version, onnx_prec, strongly_typed, fp16_flag):
    s = build_settings(PLAN3, onnx_prec, version)
    assert (s.strongly_typed, s.fp16_flag) == (strongly_typed, fp16_flag)


def test_trt11_refuses_fp16_from_an_fp32_onnx_before_any_tensorrt_call():
    with pytest.raises(UsageError, match="takes precision from the ONNX"):
        build_settings(PLAN3, "fp32", "11.4.0")


def test_weak_typing_on_10_13_is_a_warning():
    s = build_settings(PLAN3, "fp32", "10.13.3")
    assert s.fp16_flag and any("deprecated since TensorRT 10.12" in w for w in s.warnings)


@pytest.mark.parametrize("kwargs,match", [
    ({"builder_optimization_level": 9}, "0..5"), ({"workspace_bytes": 0}, "positive"),
    ({"tactic_dram_bytes": -1}, "positive"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(UsageError, match=match):
        build_settings(PLAN, "fp32", "10.3.0", **kwargs)


def test_profile_out_of_order_is_refused_with_its_index():
    bad = PLAN3.to_dict()
    bad["profiles"][1]["opt"] = [2000, 2000]  # opt beyond max: TensorRT's set_shape would raise (K3)
    from resvit_export.trt.planner import EnginePlan

    plan = EnginePlan.from_dict(bad)
    with pytest.raises(UsageError, match="profile 1 is not ordered"):
        build_settings(plan, "fp16", "10.3.0")


def test_create_config_kwargs_as_data():
    """What Polygraphy's CreateConfig receives: one Profile per planned profile, exact shapes, cache path."""
    s = build_settings(PLAN3, "fp32", "10.3.0", builder_optimization_level=2, timing_cache="out/timing.cache")
    kw = create_config_kwargs(s)
    assert set(kw) == {"profiles", "fp16", "tf32", "builder_optimization_level", "load_timing_cache"}
    assert kw["fp16"] is True and kw["tf32"] is False and kw["builder_optimization_level"] == 2
    assert kw["load_timing_cache"] == "out/timing.cache"
    assert len(kw["profiles"]) == 3
    for prof, (lo, opt, hi) in zip(kw["profiles"], s.profiles):
        assert list(prof) == ["pixels"]
        shapes = prof["pixels"]
        assert (tuple(shapes.min), tuple(shapes.opt), tuple(shapes.max)) == (lo, opt, hi)
    assert create_config_kwargs(build_settings(PLAN, "fp32", "10.3.0"))["load_timing_cache"] is None


def test_create_config_kwargs_are_accepted_by_polygraphy():
    """CreateConfig's constructor is lazy (no TensorRT call), so a renamed keyword fails here already."""
    from polygraphy.backend.trt import CreateConfig

    config = CreateConfig(**create_config_kwargs(build_settings(PLAN3, "fp16", "10.13.3")))
    assert len(config.profiles) == 3 and config.builder_optimization_level == 3 and config.fp16 is False


def test_progress_state_nested_phases_and_cancel():
    lines = []
    st = ProgressState(lines.append, min_interval=0.0)
    st.phase_start("Building engine", None, 3)
    st.phase_start("Tactic selection", "Building engine", 10)
    assert st.step_complete("Tactic selection", 0) is True
    assert st.step_complete("Building engine", 0) is True
    st.phase_finish("Tactic selection")
    st.cancel()
    assert st.step_complete("Building engine", 1) is False  # asks TensorRT to stop
    st.phase_finish("Building engine")
    assert st.active == []
    assert lines[0] == "[TRT] Building engine (3 steps)"
    assert lines[1] == "  [TRT] Tactic selection (10 steps)"
    assert "[TRT] Building engine: 1/3" in lines and lines[-1] == "[TRT] Building engine done"
    assert st.events == [("start", "Building engine"), ("start", "Tactic selection"),
                         ("finish", "Tactic selection"), ("finish", "Building engine")]


def test_progress_failure_is_kept_and_cancels():
    st = ProgressState(lambda s: None, min_interval=0.0)
    st.phase_start("p", None, 2)
    first, second = ValueError("display broke"), KeyError("later")
    st.fail(first)
    st.fail(second)
    assert st.failure is first and st.step_complete("p", 0) is False


def test_progress_state_is_thread_safe():
    st = ProgressState(lambda s: None, min_interval=0.0)
    st.phase_start("p", None, 4000)

    def work(off):
        for i in range(1000):
            st.step_complete("p", off + i)

    threads = [threading.Thread(target=work, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    st.phase_finish("p")
    assert st.active == []


def test_missing_onnx_is_reported_before_tensorrt(tmp_path):
    with pytest.raises(InvalidArtifactError, match="does not exist"):
        build_engines(tmp_path / "nope.onnx", PLAN, tmp_path)


def test_bad_optimization_level(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(UsageError, match="0..5"):
        build_engines(tmp_path / "model.onnx", PLAN, tmp_path, builder_optimization_level=9)


@pytest.mark.skipif(is_available("tensorrt"), reason="TensorRT is installed here")
def test_without_tensorrt_the_error_says_how_to_build_on_the_device(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(MissingDependencyError) as info:
        build_engines(tmp_path / "model.onnx", PLAN.to_dict(), tmp_path)
    msg = str(info.value)
    assert "resvit-export bundle" in msg and "build_engine.sh" in msg and "python3-libnvinfer" in msg
    assert info.value.exit_code == 7
    assert not (tmp_path / "model.fp32.plan").exists() and not (tmp_path / "manifest.json").exists()


@pytest.mark.trt
def test_build_multi_profile_engine_with_timing_cache(tmp_path):  # pragma: no cover - needs TensorRT + GPU
    from resvit_export.export.onnx_export import export_onnx
    from resvit_export.models import create_model
    from resvit_export.trt.manifest import read_manifest, verify_artifacts

    model = create_model("deit_test")
    prof = parse_profile("224-1024")
    export_onnx(model, tmp_path / "model.onnx", prof)
    plan = plan_engine([prof], ModelSpec.from_model(model), precision="fp32")
    lines = []
    engines = build_engines(tmp_path / "model.onnx", plan, tmp_path, timing_cache=tmp_path / "timing.cache",
                            workspace_bytes=1 << 30, builder_optimization_level=1, report=lines.append)
    assert engines[0].is_file() and (tmp_path / "timing.cache").stat().st_size > 0
    m = read_manifest(tmp_path / "manifest.json")
    assert verify_artifacts(m, tmp_path) == [] and m["tensorrt"] == engines.trt_version
    assert any(line.startswith("[TRT]") for line in lines)
