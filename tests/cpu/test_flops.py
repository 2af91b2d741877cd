"""FLOPs of what ONNX Runtime executed: matmul K read right, convs counted, only the taken If branch counted."""

from __future__ import annotations

import numpy as np
import pytest

from resvit_export.cpu.flops import flops_from_profile

from .graphs import if_matmul


def _event(op, ins, outs, dur=10):
    return {"cat": "Node", "name": f"{op}_kernel_time", "dur": dur,
            "args": {"op_name": op, "input_type_shape": [{"float": s} for s in ins],
                     "output_type_shape": [{"float": s} for s in outs]}}


def test_formulas_from_profile_events():
    events = [
        _event("MatMul", [[1, 196, 384]], [[1, 196, 1152]]),  # weight not listed: K from A
        _event("FusedMatMul", [[1, 6, 64, 196], [1, 6, 196, 64]], [[1, 6, 196, 196]]),  # transposed A: K = 64
        _event("Conv", [[1, 3, 224, 224], [384, 3, 16, 16], [384]], [[1, 384, 14, 14]]),
        _event("Softmax", [[1, 6, 196, 196]], [[1, 6, 196, 196]], dur=5),
        _event("If", [], [[1]], dur=1000),  # its branch's kernels are listed themselves
        _event("MultiHeadAttention", [[1, 196, 384]] * 3, [[1, 196, 384]]),
    ]
    got = flops_from_profile(events)
    assert got.by_op == {"MatMul": 2 * 196 * 1152 * 384, "FusedMatMul": 2 * 6 * 196 * 196 * 64,
                         "Conv": 2 * 384 * 14 * 14 * 3 * 16 * 16}
    assert got.uncounted == ["MultiHeadAttention"]
    assert "If" not in got.time_us_by_op and got.time_us_by_op["Softmax"] == 5
    assert got.matmul_share == pytest.approx(30 / 45)


@pytest.mark.parametrize("cond", [True, False])
def test_only_the_taken_branch_counts(tmp_path, cond):
    pytest.importorskip("onnxruntime")
    from resvit_export.cpu.flops import executed_flops

    path = if_matmul(tmp_path / "if.onnx", k=8, n=16)
    ran = executed_flops(path, {"cond": np.array(cond), "x": np.ones((5, 8), np.float32)}, runs=2)
    assert ran.total == (2 * 5 * 16 * 8 if cond else 0)
