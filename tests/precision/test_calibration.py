"""Calibration sets (deterministic, hashed), the range cache, the TensorRT cache text."""

import logging
import re
import struct

import numpy as np
import onnx
import pytest

from resvit_export.errors import InvalidArtifactError, UsageError
from resvit_export.precision.calibration import (CalibrationSet, compute_ranges, parse_resolutions,
                                                 read_trt_calibration_cache, resolutions_from_profile,
                                                 trt_version_number, write_trt_calibration_cache)
from resvit_export.profiles import parse_profile


def test_parse_resolutions():
    assert parse_resolutions("224,512x320, 224") == [(224, 224), (512, 320)]
    with pytest.raises(UsageError):
        parse_resolutions("224,abc")
    assert resolutions_from_profile(parse_profile("224-1792@512")) == [(224, 224), (512, 512), (1792, 1792)]


def test_synthetic_set_is_deterministic_and_saved_with_sidecar(tmp_path):
    a = CalibrationSet.synthetic(3, [(64, 96), (32, 32)], seed=1)
    b = CalibrationSet.synthetic(3, [(64, 96), (32, 32)], seed=1)
    assert a.sha256 == b.sha256 and a.sha256 != CalibrationSet.synthetic(3, [(64, 96), (32, 32)], seed=2).sha256
    assert a.resolutions == [(32, 32), (64, 96)] and a.count == 3
    assert a.arrays[(64, 96)].shape == (3, 3, 64, 96) and a.arrays[(64, 96)].dtype == np.float32
    a.save(tmp_path / "s")
    side = (tmp_path / "s" / "calib.json").read_text()
    assert a.sha256 in side and '"count": 3' in side
    assert CalibrationSet.load(tmp_path / "s").sha256 == a.sha256
    # a modified array no longer matches the sidecar
    with np.load(tmp_path / "s" / "calib.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["x_32x32"][0, 0, 0, 0] += 1
    np.savez(tmp_path / "s" / "calib.npz", **arrays)
    with pytest.raises(InvalidArtifactError, match="sidecar"):
        CalibrationSet.load(tmp_path / "s")


def test_folder_of_images_and_arrays(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / f"im{i}.png")
    np.save(tmp_path / "raw.npy", rng.integers(0, 255, (2, 30, 30, 3), dtype=np.uint8))
    cs = CalibrationSet.from_folder(tmp_path, [(32, 32), (48, 64)])
    assert cs.count == 4 and cs.arrays[(48, 64)].shape == (4, 3, 48, 64)
    assert -3 < cs.arrays[(32, 32)].min() < 0 < cs.arrays[(32, 32)].max() < 3  # ImageNet-normalised
    assert CalibrationSet.from_folder(tmp_path, [(32, 32)], limit=3).count == 3
    with pytest.raises(UsageError):
        CalibrationSet.from_folder(tmp_path / "empty_missing", [(32, 32)])


def test_range_cache_hit_and_miss(deit_onnx, calib_set, tmp_path, caplog):
    cache = tmp_path / "cache"
    first = compute_ranges(deit_onnx, calib_set, "minmax", cache_dir=cache)
    assert not first.cache_hit and first.cache_path.is_file() and len(first.ranges) > 10
    with caplog.at_level(logging.INFO, logger="resvit_export.precision.calibration"):
        second = compute_ranges(deit_onnx, calib_set, "minmax", cache_dir=cache)
    assert second.cache_hit and "cache hit" in caplog.text and second.ranges == first.ranges
    # a different ONNX (same weights, one changed attribute of metadata) is a different key -> miss
    m = onnx.load(str(deit_onnx))
    m.doc_string = "changed"
    other = tmp_path / "other.onnx"
    onnx.save(m, str(other))
    third = compute_ranges(other, calib_set, "minmax", cache_dir=cache)
    assert not third.cache_hit and third.cache_path != first.cache_path
    # another method is another key too
    assert not compute_ranges(deit_onnx, calib_set, "percentile", cache_dir=cache).cache_hit


def test_trt_cache_text_format(tmp_path):
    assert trt_version_number("10.3.0") == 100300 and trt_version_number("8.6.1") == 8601
    path = write_trt_calibration_cache({"pixels": 2.6, "val_1": 127.0, "zero": 0.0}, tmp_path / "calib.cache")
    lines = path.read_text().splitlines()
    assert lines[0] == "TRT-100300-EntropyCalibration2"
    assert all(re.fullmatch(r"[\w.:/\-]+: [0-9a-f]{8}", ln) for ln in lines[1:])
    assert "val_1: 3f800000" in lines  # 127 / 127 = 1.0f
    header, scales = read_trt_calibration_cache(path)
    assert header == lines[0] and scales["pixels"] == pytest.approx(2.6 / 127, rel=1e-6)
    assert struct.unpack(">f", bytes.fromhex(lines[1].split(": ")[1]))[0] == scales["pixels"]


def test_calibration_batches_shrink_with_resolution_and_respect_fixed_batch():
    from resvit_export.precision.calibration import _batches_for

    small, big = np.zeros((5, 3, 224, 224), np.float32), np.zeros((5, 3, 448, 448), np.float32)
    assert [b.shape[0] for b in _batches_for(small, 4, None)] == [4, 1]
    assert [b.shape[0] for b in _batches_for(big, 4, None)] == [1, 1, 1, 1, 1]
    assert [b.shape[0] for b in _batches_for(small, 4, 2)] == [2, 2, 2]


def test_calibration_set_for_build():
    from resvit_export.models import create_model
    from resvit_export.precision.calibration import calibration_resolutions, calibration_set_for_build

    rule = create_model("deit_test").size_rule
    assert calibration_resolutions([parse_profile("64-2048@128x256")], rule) == [(64, 64), (128, 256), (1024, 1024)]
    cs = calibration_set_for_build([parse_profile("32-96")], rule, calib_synthetic=2, seed=0)
    assert cs.resolutions == [(32, 32), (48, 48), (96, 96)] and cs.count == 2
    with pytest.raises(UsageError, match="INT8 needs calibration data"):
        calibration_set_for_build([], None)


def test_builtin_photos_as_calibration_source(tmp_path, monkeypatch):
    """`--calib-data builtin`: the nine shipped photos at every calibration resolution, their licences in the
    sidecar; any other word must be an existing path; a missing photos package is exit 7 before any work."""
    from resvit_export.data import photos
    from resvit_export.errors import MissingDependencyError
    from resvit_export.models import create_model
    from resvit_export.precision.calibration import calibration_set_for_build, parse_calib_data
    from resvit_export.preflight import check_calibration_source

    assert parse_calib_data("builtin") == "builtin"
    with pytest.raises(UsageError, match="does not exist .*'builtin'"):
        parse_calib_data(str(tmp_path / "nope"))
    cs = calibration_set_for_build([parse_profile("32-96")], create_model("deit_test").size_rule,
                                   calib_data="builtin")
    assert cs.resolutions == [(32, 32), (48, 48), (96, 96)] and cs.count == len(photos.BUILTIN_PHOTOS) == 9
    assert cs.arrays[(48, 48)].shape == (9, 3, 48, 48) and cs.sidecar()["source"]["photos"]["chelsea"].startswith("CC0")
    np.testing.assert_array_equal(cs.arrays[(48, 48)], photos.builtin_photos(48, 48))
    check_calibration_source("int8", "builtin", None)  # installed here: no error
    monkeypatch.setattr(photos.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match="pip install 'resvit-export\\[photos\\]'"):
        check_calibration_source("int8", "builtin", None)
