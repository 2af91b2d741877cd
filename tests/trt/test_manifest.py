"""Sidecar manifest: round trip, hash verification, host info and EVERY host-mismatch message."""

import json

import pytest

from resvit_export.errors import InvalidArtifactError
from resvit_export.profiles import parse_profile
from resvit_export.trt.manifest import (
    HostInfo, build_manifest, check_manifest_against_host, find_manifest, host_info, parse_nv_tegra_release,
    read_manifest, verify_artifacts, write_manifest)
from resvit_export.trt.memory import ModelSpec
from resvit_export.trt.planner import plan_engine

ORIN = HostInfo(tensorrt="10.3.0.30", cuda="12.6", gpu_name="Orin", compute_capability="8.7", jetpack="6.1/6.2",
                l4t="36.4.0", machine="aarch64")


@pytest.fixture
def build_dir(tmp_path):
    (tmp_path / "model.fp16.onnx").write_bytes(b"onnx-bytes")
    (tmp_path / "model.fp16.plan").write_bytes(b"plan-bytes")
    (tmp_path / "timing.cache").write_bytes(b"cache")
    (tmp_path / "calibration.cache").write_bytes(b"calib")
    plan = plan_engine([parse_profile("224-1024")], ModelSpec("deit", 192, 12, 3, name="deit_t"))
    m = build_manifest(plan, {"onnx": tmp_path / "model.fp16.onnx", "engine": [tmp_path / "model.fp16.plan"],
                              "timing_cache": [tmp_path / "timing.cache"],
                              "calibration": [tmp_path / "calibration.cache"]},
                       tmp_path, host=ORIN, fp32_nodes=["/blocks.0/norm1/LayerNormalization"], onnx_precision="fp16",
                       parity={"fp16": {"passed": True, "max_abs": 1e-3}})
    write_manifest(m, tmp_path / "manifest.json")
    return tmp_path


def test_round_trip_and_contents(build_dir):
    m = read_manifest(build_dir / "manifest.json")
    assert m["tensorrt"] == "10.3.0.30" and m["gpu"]["compute_capability"] == "8.7" and m["jetpack"] == "6.1/6.2"
    assert m["precision"] == {"mode": "fp16", "onnx_precision": "fp16",
                              "fp32_nodes": ["/blocks.0/norm1/LayerNormalization"]}
    assert [p["index"] for p in m["profiles"]] == [0, 1] and m["profiles"][1]["shapes"]["max"] == [1, 3, 1024, 1024]
    assert {a["role"] for a in m["artifacts"]} == {"onnx", "engine", "timing_cache", "calibration"}
    assert all(len(a["sha256"]) == 64 and not a["path"].startswith("/") for a in m["artifacts"])
    assert m["parity"]["fp16"]["passed"] is True
    assert verify_artifacts(m, build_dir) == []
    # the plan file itself is untouched: no header was written into it
    assert (build_dir / "model.fp16.plan").read_bytes() == b"plan-bytes"


def test_tampered_and_missing_artifacts(build_dir):
    (build_dir / "model.fp16.plan").write_bytes(b"evil")
    (build_dir / "calibration.cache").unlink()
    problems = verify_artifacts(read_manifest(build_dir / "manifest.json"), build_dir)
    assert any("engine model.fp16.plan was modified" in p for p in problems)
    assert any("calibration calibration.cache is missing" in p for p in problems)


def test_manifest_paths_cannot_escape(build_dir):
    m = read_manifest(build_dir / "manifest.json")
    m["artifacts"][0]["path"] = "../../etc/passwd"
    assert "leaves the artifact directory" in verify_artifacts(m, build_dir)[0]


def test_find_and_read_errors(build_dir, tmp_path_factory):
    assert find_manifest(build_dir) == build_dir / "manifest.json"
    assert find_manifest(build_dir / "model.fp16.plan") == build_dir / "manifest.json"
    assert find_manifest(build_dir / "manifest.json") == build_dir / "manifest.json"
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(InvalidArtifactError, match="no sidecar manifest"):
        find_manifest(empty)
    (empty / "manifest.json").write_text(json.dumps({"schema": "other"}))
    with pytest.raises(InvalidArtifactError, match="not a resvit-export engine manifest"):
        read_manifest(empty / "manifest.json")
    (empty / "manifest.json").write_text("{broken")
    with pytest.raises(InvalidArtifactError, match="cannot read manifest"):
        read_manifest(empty / "manifest.json")
    with pytest.raises(InvalidArtifactError, match="does not exist"):
        find_manifest(empty / "nope.plan")


def _m(build_dir):
    return read_manifest(build_dir / "manifest.json")


def test_same_host_is_compatible(build_dir):
    assert check_manifest_against_host(_m(build_dir), ORIN) == []


def test_mismatch_trt_version_and_sm(build_dir):
    host = HostInfo(tensorrt="11.4.1", cuda="13.0", gpu_name="H100", compute_capability="9.0", machine="aarch64")
    msgs = check_manifest_against_host(_m(build_dir), host)
    assert ("built with TensorRT 10.3.0 on sm_87; this host has 11.4.1 on sm_90: plans only load on the TensorRT "
            "version that built them - rebuild on the device") in msgs
    assert any("engines are compiled for one compute capability" in m for m in msgs)
    assert any("built against CUDA 12.6; this host has CUDA 13.0" in m for m in msgs)
    assert any("built on a Jetson (JetPack 6.1/6.2); this host is not a Jetson" in m for m in msgs)


def test_mismatch_no_tensorrt_no_gpu(build_dir):
    msgs = check_manifest_against_host(_m(build_dir), HostInfo(machine="x86_64"))
    assert any("this host has no TensorRT: the plan cannot be loaded here" in m for m in msgs)
    assert any("this host has no visible CUDA GPU" in m for m in msgs)
    assert any("built on aarch64; this host is x86_64" in m for m in msgs)


def test_mismatch_same_sm_other_gpu(build_dir):
    host = HostInfo(**{**ORIN.to_dict(), "gpu_name": "Orin (nvgpu) 16GB"})
    (msg,) = check_manifest_against_host(_m(build_dir), host)
    assert "same sm_87): it loads, but tactics were timed on the other GPU" in msg


def test_mismatch_jetpack(build_dir):
    host = HostInfo(**{**ORIN.to_dict(), "jetpack": "7.2", "l4t": "39.2.0"})
    (msg,) = check_manifest_against_host(_m(build_dir), host)
    assert msg.startswith("built on JetPack 6.1/6.2 (L4T 36.4.0); this host runs JetPack 7.2 (L4T 39.2.0)")


def test_mismatch_desktop_build_on_jetson(build_dir):
    m = _m(build_dir)
    m.update(jetpack=None, l4t=None, platform="aarch64")
    (msg,) = check_manifest_against_host(m, ORIN)
    assert "built on a non-Jetson host (aarch64); this host is a Jetson (JetPack 6.1/6.2)" in msg


def test_nv_tegra_release_and_host_info(tmp_path):
    line = "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13 2024"
    assert parse_nv_tegra_release(line) == "36.4.0"
    assert parse_nv_tegra_release("garbage") is None
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "nv_tegra_release").write_text(line + "\n")
    h = host_info(root=tmp_path, probe_gpu=False)
    assert h.l4t == "36.4.0" and h.jetpack == "6.1/6.2" and h.gpu_name is None and h.compute_capability is None
    plain = host_info(root=tmp_path / "nowhere", probe_gpu=False)
    assert plain.l4t is None and plain.jetpack is None and plain.machine


def test_host_info_on_this_machine_needs_no_tensorrt():
    h = host_info()
    assert isinstance(h, HostInfo)  # fields are None where absent; nothing raises


def test_write_build_manifest_for_a_deferred_engine(tmp_path):
    """What the build pipeline's manifest step writes when TensorRT was absent (engine DEFERRED)."""
    from resvit_export.trt.manifest import write_build_manifest

    (tmp_path / "model.rewritten.onnx").write_bytes(b"fp32")
    (tmp_path / "model.fp16.onnx").write_bytes(b"fp16")
    (tmp_path / "plan.json").write_text("{}")
    (tmp_path / "calibration.cache").write_bytes(b"c")
    plan = plan_engine([parse_profile("224-512")], ModelSpec("deit", 32, 2, 2, name="deit_test"))
    m = read_manifest(write_build_manifest(
        tmp_path, plan=plan, deploy_onnx=tmp_path / "model.rewritten.onnx", precision_onnx=tmp_path / "model.fp16.onnx",
        precision="fp16", kept_fp32_nodes=["ln"], parity={"fp16": {"passed": True}}, engines=[], model_name="deit_test",
        overrides={}, seed=0, steps=[("engine", "DEFERRED")]))
    assert m["tensorrt"] is None and m["engine_status"].startswith("deferred")
    assert {a["path"] for a in m["artifacts"]} == {"model.rewritten.onnx", "model.fp16.onnx", "plan.json",
                                                   "calibration.cache"}
    assert m["precision"]["fp32_nodes"] == ["ln"] and m["parity"] == {"fp16": {"passed": True}}
    assert m["steps"] == [{"name": "engine", "status": "DEFERRED"}]
    assert verify_artifacts(m, tmp_path) == []


# NvInferVersion.h as shipped (NVIDIA/TensorRT include/NvInferVersion.h lines 26-33 of release/10.3, 10.13, 11.1):
# 10.3 spells the numbers, 10.13 and 11.x point NV_TENSORRT_* at TRT_*_ENTERPRISE macros.
_HEADER_10_3 = """#define NV_TENSORRT_MAJOR 10 //!< TensorRT major version.
#define NV_TENSORRT_MINOR 3 //!< TensorRT minor version.
#define NV_TENSORRT_PATCH 0 //!< TensorRT patch version.
#define NV_TENSORRT_BUILD 26 //!< TensorRT build number.
"""
_HEADER_ENTERPRISE = """#define TRT_MAJOR_ENTERPRISE {0}
#define TRT_MINOR_ENTERPRISE {1}
#define TRT_PATCH_ENTERPRISE 0
#define TRT_BUILD_ENTERPRISE {2}
#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE //!< TensorRT major version.
#define NV_TENSORRT_MINOR TRT_MINOR_ENTERPRISE //!< TensorRT minor version.
#define NV_TENSORRT_PATCH TRT_PATCH_ENTERPRISE //!< TensorRT patch version.
#define NV_TENSORRT_BUILD TRT_BUILD_ENTERPRISE //!< TensorRT build number.
"""


@pytest.mark.parametrize("text,version", [
    (_HEADER_10_3, "10.3.0"),
    (_HEADER_ENTERPRISE.format(10, 13, 35), "10.13.0"),
    (_HEADER_ENTERPRISE.format(11, 1, 106), "11.1.0"),
    ("#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE\n", None),  # alias to nothing: unknown, not a guess
    ("", None),
])
def test_version_header_layouts(text, version):
    from resvit_export.trt.manifest import parse_nvinfer_version_header

    assert parse_nvinfer_version_header(text) == version


def test_host_version_falls_back_to_the_enterprise_header(tmp_path, monkeypatch):
    """No dist metadata (JetPack apt install) + a 10.13-style header: the version is still found."""
    from importlib import metadata

    import resvit_export.trt.manifest as manifest

    header = tmp_path / "NvInferVersion.h"
    header.write_text(_HEADER_ENTERPRISE.format(10, 13, 35))

    def no_dist(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", no_dist)
    monkeypatch.setattr(manifest, "_NVINFER_VERSION_HEADERS", (str(tmp_path / "absent.h"), str(header)))
    assert manifest._tensorrt_version() == "10.13.0"
