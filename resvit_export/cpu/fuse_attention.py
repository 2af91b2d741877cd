"""Fuse the explicit attention of the TensorRT graph into ONNX Runtime's ``com.microsoft.MultiHeadAttention``.

The TensorRT graph spells attention out as ``MatMul(q, kT) -> Softmax -> MatMul(., v)``, the pattern TensorRT's own
MHA fusion looks for. ONNX Runtime runs that literally on CPU and materialises the [B, H, N, N] score matrix: DeiT-S
at 1792 px holds 12544² scores per head, gigabytes per layer, which is why the TensorRT graph runs 1.1-1.2x slower
than PyTorch eager (whose SDPA kernel is a flash attention) from 1344 px up. ORT's CPU MultiHeadAttention kernel has
an MLAS flash-attention path (onnxruntime contrib_ops/cpu/bert/multihead_attention.cc, ``mlas_flashattn.h``).

Matched per Softmax: ``[Mul|Div by a scalar] <- MatMul(q [B,H,N,d], kT [B,H,d,N])``, Softmax on the last axis, one
consumer ``MatMul(probs, v [B,H,N,d])``, then ``Transpose(0,2,1,3)`` and a rank-3 Reshape (heads merged). Replaced
by Transposes/Reshapes of q, k, v to [B, N, H*d] and one MultiHeadAttention (``num_heads`` from q's static head
dim, ``scale`` the folded scalar, 1 when ``prescale_q`` already moved it onto q). Anything else (a mask or bias
added to the scores, RIViT's relative position bias) is left as it is. The result is a CPU-only graph: TensorRT
never sees it, and ``select.py`` proves it against PyTorch before it is timed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["fuse_attention"]


def _single_consumer(tensor):
    return tensor.outputs[0] if len(tensor.outputs) == 1 else None


def _scalar_const(tensor):
    from resvit_export.graph.passes import _const_value

    v = _const_value(tensor)
    return None if v is None or v.size != 1 else float(v.reshape(()))


def _score_scale(scores):
    """(MatMul node, scale) when ``scores`` is MatMul or a scalar Mul/Div of one; else (None, None)."""
    node = scores.inputs[0] if len(scores.inputs) == 1 else None
    if node is None:
        return None, None
    if node.op == "MatMul":
        return node, 1.0
    if node.op in ("Mul", "Div") and len(node.inputs) == 2:
        for data, const in ((node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])):
            s = _scalar_const(const)
            if s is None or len(data.inputs) != 1 or data.inputs[0].op != "MatMul" or len(data.outputs) != 1:
                continue
            if node.op == "Div" and const is node.inputs[1]:
                return data.inputs[0], 1.0 / s
            if node.op == "Mul":
                return data.inputs[0], s
    return None, None


def fuse_attention(src: str | os.PathLike, dst: str | os.PathLike, num_heads: int | None = None) -> int:
    """Write ``src`` with every matched attention fused to ``dst``; returns how many were fused (0: nothing written)."""
    import onnx

    from resvit_export.graph.passes import _gs

    gs = _gs()
    model = onnx.shape_inference.infer_shapes(onnx.load(str(src)))
    graph = gs.import_onnx(model)
    fused = 0
    for sm in [n for n in graph.nodes if n.op == "Softmax"]:
        if sm.attrs.get("axis", -1) not in (-1, 3):
            continue
        mm1, scale = _score_scale(sm.inputs[0])
        probs = sm.outputs[0]
        mm2 = _single_consumer(probs)
        if mm1 is None or mm2 is None or mm2.op != "MatMul" or mm2.inputs[0] is not probs \
                or len(sm.inputs[0].outputs) != 1:
            continue
        tr = _single_consumer(mm2.outputs[0])
        if tr is None or tr.op != "Transpose" or list(tr.attrs.get("perm", [])) != [0, 2, 1, 3]:
            continue
        rs = _single_consumer(tr.outputs[0])
        out = rs.outputs[0] if rs is not None and rs.op == "Reshape" else None
        if out is None or (out.shape is not None and len(out.shape) != 3):
            continue
        q, kt, v = mm1.inputs[0], mm1.inputs[1], mm2.inputs[1]
        heads = q.shape[1] if q.shape is not None and len(q.shape) == 4 and isinstance(q.shape[1], int) else num_heads
        if not heads:
            continue
        i = fused
        flat = gs.Constant(f"mha{i}_flat", np.array([0, 0, -1], dtype=np.int64))

        def to_bsd(t, perm, tag):
            t4 = gs.Variable(f"mha{i}_{tag}_bsnh", dtype=np.float32)
            t3 = gs.Variable(f"mha{i}_{tag}_bsd", dtype=np.float32)
            graph.nodes.append(gs.Node("Transpose", f"mha{i}_{tag}_transpose", {"perm": perm}, [t], [t4]))
            graph.nodes.append(gs.Node("Reshape", f"mha{i}_{tag}_reshape", {}, [t4, flat], [t3]))
            return t3

        q3, k3, v3 = to_bsd(q, [0, 2, 1, 3], "q"), to_bsd(kt, [0, 3, 1, 2], "k"), to_bsd(v, [0, 2, 1, 3], "v")
        rs.outputs.clear()
        graph.nodes.append(gs.Node("MultiHeadAttention", f"mha{i}", {"num_heads": int(heads), "scale": float(scale)},
                                   [q3, k3, v3], [out], domain="com.microsoft"))
        fused += 1
    if not fused:
        return 0
    graph.cleanup().toposort()
    out_model = gs.export_onnx(graph)
    if not any(o.domain == "com.microsoft" for o in out_model.opset_import):
        out_model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    onnx.save(out_model, str(Path(dst)))
    return fused
