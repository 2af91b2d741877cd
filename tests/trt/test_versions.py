"""TensorRT/JetPack facts and the capability check the builder consults."""

import pytest

from resvit_export.errors import UsageError
from resvit_export.trt.versions import (
    JETPACK_RELEASES, check_capabilities, has_api, jetpack_for_l4t, jetpack_release, parse_version, version_str)


def codes(problems, severity=None):
    return [p.code for p in problems if severity is None or p.severity == severity]


def test_jetpack_matrix():
    assert jetpack_release("5.1").tensorrt.startswith("8.5") and jetpack_release("5.1").max_onnx_opset == 17
    assert jetpack_release("6.1").tensorrt == "10.3.0" == jetpack_release("6.2").tensorrt
    assert jetpack_release("7.0").tensorrt.startswith("10.13") and jetpack_release("7.1").tensorrt.startswith("10.13")
    assert jetpack_release("7.2.2").tensorrt == "11.4.1" and jetpack_release("7.2.3").tensorrt == "11.4.1"
    assert jetpack_release("6.1.1").jetpack == "6.1"
    assert jetpack_release("7.0").devices == ("thor",)
    with pytest.raises(UsageError, match="known releases"):
        jetpack_release("4.6")
    assert jetpack_for_l4t("36.4.0") == "6.1/6.2" and jetpack_for_l4t("35.3.1") == "5.1"
    assert jetpack_for_l4t("38.2.0") == "7.0" and jetpack_for_l4t("12.0") is None
    assert [r.jetpack for r in JETPACK_RELEASES][0] == "5.1"


def test_versions_parse():
    assert parse_version("10.3.0.30") == (10, 3, 0, 30) and parse_version("v11") == (11,)
    assert parse_version(10) == (10,) and version_str("10.13.3.9") == "10.13" and version_str(None) == "unknown"
    with pytest.raises(UsageError):
        parse_version("ten")


@pytest.mark.parametrize("feature,v10,v11", [
    ("BuilderFlag.FP16", True, False), ("BuilderFlag.INT8", True, False), ("IInt8Calibrator", True, False),
    ("config.set_flag(FP16/INT8)", True, False), ("trtexec --fp16", True, False), ("trtexec --calib", True, False),
    ("strongly_typed_default", False, True), ("ICudaEngine.device_memory_size", True, False),
    ("IProgressMonitor", True, True), ("name_based_io", True, True),
])
def test_api_availability(feature, v10, v11):
    assert has_api("10.3.0", feature) is v10
    assert has_api("11.4.1", feature) is v11


def test_api_availability_minor_versions():
    assert not has_api("10.3", "onnx_attention_op") and has_api("10.14", "onnx_attention_op")
    assert not has_api("10.3", "if_rank_only_branches") and has_api("10.13.3", "if_rank_only_branches")
    with pytest.raises(KeyError):
        has_api("10.3", "warp_drive")


def test_int8_with_calibrator_is_refused_on_trt11():
    probs = check_capabilities("11.4.1", "int8", "python", onnx_precision="int8", calibrator=True)
    assert codes(probs, "error") == ["calibrator-removed"]
    # `build --int8` writes model.int8.onnx; `calibrate` only writes calib.npz/calib.cache/ranges
    assert "removed in TensorRT 11" in str(probs[0]) and "build MODEL --int8" in str(probs[0])
    assert "calibrate" not in str(probs[0])


def test_trt11_takes_precision_from_the_onnx():
    for path in ("python", "trtexec"):
        probs = check_capabilities("11.4", "fp16", path, onnx_precision="fp32")
        assert codes(probs, "error") == ["precision-from-onnx"]
        assert "model.fp16.onnx" in probs[0].fix
    assert check_capabilities("11.4", "fp16", onnx_precision="fp16") == []
    assert check_capabilities("11.4", "int8", onnx_precision="int8") == []
    assert codes(check_capabilities("11.4", "int8")) == ["precision-from-onnx"]  # unknown ONNX precision
    assert check_capabilities("11.4", "fp32", onnx_precision="fp32") == []


def test_trt10_semantics():
    assert check_capabilities("10.3.0", "fp16", onnx_precision="fp32") == []  # weak typing --fp16 is fine on 10.3
    assert codes(check_capabilities("10.13", "fp16", onnx_precision="fp32"), "warning") == ["weak-typing-deprecated"]
    assert check_capabilities("10.3", "int8", onnx_precision="int8") == []  # Q/DQ strongly typed
    assert codes(check_capabilities("10.3", "int8", onnx_precision="fp32"), "error") == ["int8-needs-calibration"]
    assert codes(check_capabilities("10.3", "int8", calibrator=True), "warning") == ["calibrator-deprecated"]


def test_mismatched_onnx_precision_and_old_versions():
    assert "onnx-precision-mismatch" in codes(check_capabilities("10.3", "fp16", onnx_precision="int8"), "error")
    assert "onnx-precision-mismatch" in codes(check_capabilities("10.3", "fp32", onnx_precision="fp16"), "error")
    assert codes(check_capabilities("8.5.2", "fp16", "python"), "error") == ["trt-too-old"]
    assert codes(check_capabilities("8.5.2", "fp16", "trtexec"), "warning") == ["trt-too-old"]


def test_trt11_on_jetpack():
    assert codes(check_capabilities("11.4.1", "fp32", jetpack="6.2"), "error") == ["trt11-jetpack"]
    assert codes(check_capabilities("11.3.0", "fp32", jetpack="7.2.2"), "error") == ["trt11-jetpack"]
    assert check_capabilities("11.4.1", "fp32", jetpack="7.2.2") == []


def test_bad_arguments():
    with pytest.raises(UsageError):
        check_capabilities("10.3", "fp8")
    with pytest.raises(UsageError):
        check_capabilities("10.3", "fp16", path="onnxruntime")
    with pytest.raises(UsageError):
        check_capabilities("10.3", "fp16", onnx_precision="bf16")
