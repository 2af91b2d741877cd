"""Attention fused into ORT's MultiHeadAttention computes what the explicit graph computes, and only where it may."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from .graphs import attention

pytest.importorskip("onnxruntime")

from resvit_export.cpu.fuse_attention import fuse_attention  # noqa: E402
from resvit_export.cpu.session import cpu_session  # noqa: E402


@pytest.mark.parametrize("scale_after", [None, 0.125])
def test_fused_equals_explicit(tmp_path, scale_after):
    src = attention(tmp_path / "a.onnx", scale_after=scale_after)
    assert fuse_attention(src, tmp_path / "f.onnx") == 1
    ops = [n.op_type for n in onnx.load(str(tmp_path / "f.onnx")).graph.node]
    assert "MultiHeadAttention" in ops and "Softmax" not in ops
    a, b = cpu_session(src, 1), cpu_session(tmp_path / "f.onnx", 1)
    for n in (1, 7, 300):  # the sequence length stays dynamic
        x = np.random.default_rng(n).standard_normal((2, n, 16)).astype(np.float32)
        np.testing.assert_allclose(b.run(None, {"x": x})[0], a.run(None, {"x": x})[0], atol=1e-5, rtol=0)


def test_scores_with_a_bias_are_left_alone(tmp_path):
    src = attention(tmp_path / "a.onnx", bias=True)
    assert fuse_attention(src, tmp_path / "f.onnx") == 0
    assert not (tmp_path / "f.onnx").exists()
