"""FP16 and INT8 on every other tiny *_test model (slow: their dynamo exports take 10-100 s each on CPU)."""

import onnx
import pytest

from resvit_export.models import list_models
from resvit_export.precision.fp16 import FP16_COSINE_MIN, make_fp16_onnx, verify_against_reference
from resvit_export.precision.int8 import make_int8_onnx, qdq_summary

from .conftest import SIZES, export_tiny

OTHERS = [n for n in list_models() if n.endswith("_test") and n != "deit_test"]


@pytest.mark.slow
@pytest.mark.parametrize("name", OTHERS)
def test_fp16_and_int8_on_tiny_model(name, calib_set, tmp_path):
    src = export_tiny(name, tmp_path / "model.onnx")
    fp16 = make_fp16_onnx(src, tmp_path / "model.fp16.onnx", verify_sizes=SIZES)
    assert all(p["cosine"] > FP16_COSINE_MIN for p in fp16.parity), fp16.parity
    # INT8 drift on random weights is not a property of the conversion (tests/precision/test_int8.py tests the
    # gate by construction); here the Q/DQ graph must only keep its placement and run at every size.
    int8 = make_int8_onnx(src, tmp_path / "model.int8.onnx", calib_set, cache_dir=tmp_path / "cache", verify=False)
    assert set(qdq_summary(onnx.load(int8.path))["dq_consumers"]) <= {"MatMul", "Gemm", "Conv", "Shape"}
    rows = verify_against_reference(src, int8.path, SIZES)
    assert [(r["h"], r["w"]) for r in rows] == list(SIZES)
