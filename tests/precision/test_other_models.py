"""FP16 and INT8 on every other tiny *_test model (slow: their dynamo exports take 10-100 s each on CPU)."""

import pytest

from resvit_export.models import list_models
from resvit_export.precision.fp16 import FP16_COSINE_MIN, make_fp16_onnx
from resvit_export.precision.int8 import INT8_COSINE_MIN, make_int8_onnx

from .conftest import SIZES, export_tiny

OTHERS = [n for n in list_models() if n.endswith("_test") and n != "deit_test"]


@pytest.mark.slow
@pytest.mark.parametrize("name", OTHERS)
def test_fp16_and_int8_on_tiny_model(name, calib_set, tmp_path):
    src = export_tiny(name, tmp_path / "model.onnx")
    fp16 = make_fp16_onnx(src, tmp_path / "model.fp16.onnx", verify_sizes=SIZES)
    assert all(p["cosine"] > FP16_COSINE_MIN for p in fp16.parity), fp16.parity
    int8 = make_int8_onnx(src, tmp_path / "model.int8.onnx", calib_set, cache_dir=tmp_path / "cache",
                          verify_sizes=SIZES)
    assert all(p["cosine"] > INT8_COSINE_MIN for p in int8.parity), int8.parity
    print(name, [(p["h"], p["w"], round(p["cosine"], 5), p["top1_agree"]) for p in fp16.parity + int8.parity])
