"""Builder: pure parts (progress bookkeeping, dependency error) here; the real build is TensorRT + GPU only."""

import threading

import pytest

from resvit_export._optional import is_available
from resvit_export.errors import InvalidArtifactError, MissingDependencyError, UsageError
from resvit_export.profiles import parse_profile
from resvit_export.trt.builder import ProgressState, build_engines
from resvit_export.trt.memory import ModelSpec
from resvit_export.trt.planner import plan_engine

PLAN = plan_engine([parse_profile("224-512")], ModelSpec("deit", 32, 2, 2), precision="fp32")


def test_module_imports_without_tensorrt_and_defines_no_trt_class_at_import():
    import resvit_export.trt.builder as b

    assert not any(getattr(v, "__module__", "") == "tensorrt" for v in vars(b).values())
    assert callable(b.make_progress_monitor)


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
    again = build_engines(tmp_path / "model.onnx", plan, tmp_path / "b", timing_cache=tmp_path / "timing.cache")
    assert again.build_seconds <= engines.build_seconds * 1.5  # the warm timing cache does not slow it down
