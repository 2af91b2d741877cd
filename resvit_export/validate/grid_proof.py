"""Does the graph see its image only through the patch grid? The fact that lets same-grid cases merge.

Two matrix cases with the same batch and the same floor(H/p) x floor(W/p) token grid (e.g. 1776x1776 and
1791x1783 at p = 16) run the same computation if the artifact reads the pixels only through whole patches
and reads the image size only as floor(size / p). This module proves that on the ONNX graph, or names the
node that breaks it. The proof accepts, for every tensor carrying the pixels (the input, or the result of an
elementwise op on it such as the FP16 Cast or INT8 Quantize/DequantizeLinear):

* a ``Conv`` with kernel == stride == p, no padding, no dilation: its output is a function of the whole
  patches only, so pixels past the last full patch never reach it;
* a ``Shape`` node whose value leaves only through Squeeze/Unsqueeze/Reshape/Identity and then an integer
  ``Div`` by the constant p (ONNX integer Div truncates: floor for sizes), or that reads only the batch
  and channel dimensions (equal between merged cases).

Anything else (a Resize, a Pad, a Slice of the pixels, a size used before dividing by p) fails the proof and
no case is merged. The reference side needs no proof: the off-grid case that is kept runs PyTorch at the
off-grid size, so it still checks that the model floors like the graph does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

__all__ = ["GridProof", "prove_patch_grid_input"]

# Elementwise on the pixels (with constants that do not vary over H, W): cropping commutes with them.
_ELEMENTWISE = {"Cast", "Identity", "QuantizeLinear", "DequantizeLinear", "Mul", "Add", "Sub", "Div"}
_RANK = 4  # NCHW
_SHAPE_PASS = {"Squeeze", "Unsqueeze", "Reshape", "Identity"}


@dataclass(frozen=True)
class GridProof:
    """``holds``: the artifact's output depends on an input only through its batch, its token grid and the
    pixels inside it. ``reason``: why (one line), for the report."""

    holds: bool
    reason: str


def prove_patch_grid_input(onnx_path: str | os.PathLike, patch: int) -> GridProof:
    """Check the graph of ``onnx_path`` (weights not loaded) for the property above."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return _prove(model.graph, patch)


def _constants(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    out = {t.name: numpy_helper.to_array(t) for t in graph.initializer if not t.external_data}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return out


def _attr(node, name, default=None):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _prove(graph, patch: int) -> GridProof:
    inits = {t.name for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        return GridProof(False, f"the graph has {len(inputs)} inputs; the proof covers single-image graphs")
    consumers: dict[str, list] = {}
    for n in graph.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    consts = _constants(graph)
    outputs = {o.name for o in graph.output}
    pixel_tensors, convs = [inputs[0]], 0
    while pixel_tensors:
        t = pixel_tensors.pop()
        if t in outputs:
            return GridProof(False, f"the pixels reach graph output {t} directly")
        for n in consumers.get(t, []):
            if n.op_type == "Conv" and n.input[0] == t:
                bad = _conv_problem(n, patch)
                if bad:
                    return GridProof(False, f"{n.name or n.op_type} reads the pixels but {bad}")
                convs += 1
            elif n.op_type == "Shape":
                bad = _shape_problem(n, consumers, consts, patch)
                if bad:
                    return GridProof(False, bad)
            elif _is_elementwise_on(n, t, consts):
                pixel_tensors.extend(n.output)
            else:
                return GridProof(False, f"the pixels reach {n.op_type} node {n.name!r} outside the patch Conv")
    if convs == 0:
        return GridProof(False, "no stride-p patch Conv reads the pixels")
    return GridProof(True, f"the graph reads the pixels only through the {patch}x{patch}/stride-{patch} patch Conv "
                           f"and the image size only as floor(size/{patch})")


def _is_elementwise_on(node, t: str, consts) -> bool:
    """``node`` maps each pixel of ``t`` on its own: its other inputs are constants that are scalars or
    per-channel (Q/DQ ``axis`` 1, or trailing H, W dims of 1), never a per-position table."""
    if node.op_type not in _ELEMENTWISE or node.input[0] != t:
        return False
    others = [i for i in node.input[1:] if i]
    if not all(i in consts for i in others):
        return False
    if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
        return all(consts[i].size == 1 for i in others) or _attr(node, "axis", 1) in (1, 1 - _RANK)
    return all(c.size == 1 or (c.ndim >= 2 and c.shape[-2:] == (1, 1)) for c in (consts[i] for i in others))


def _conv_problem(node, patch: int) -> str | None:
    kernel = list(_attr(node, "kernel_shape", []) or [])
    strides = list(_attr(node, "strides", []) or [])
    pads = list(_attr(node, "pads", []) or [0, 0, 0, 0])
    dil = list(_attr(node, "dilations", []) or [1, 1])
    auto = _attr(node, "auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if kernel != [patch, patch] or strides != [patch, patch]:
        return f"its kernel {kernel} / stride {strides} is not the {patch}x{patch} patch"
    if any(pads) or auto not in ("NOTSET", "VALID") or any(d != 1 for d in dil):
        return "it pads or dilates"
    return None


def _shape_problem(node, consumers, consts, patch: int) -> str | None:
    end = _attr(node, "end", _RANK)
    if min(end + _RANK if end < 0 else end, _RANK) <= 2:
        return None  # batch and channels: equal between merged cases
    frontier = list(node.output)
    while frontier:
        t = frontier.pop()
        for n in consumers.get(t, []):
            if n.op_type in _SHAPE_PASS and n.input[0] == t:
                frontier.extend(n.output)
            elif n.op_type == "Div" and n.input[0] == t and n.input[1] in consts:
                d = consts[n.input[1]]
                if not (np.issubdtype(d.dtype, np.integer) and d.size and (d == patch).all()):
                    return f"the image size is divided by {d.tolist()} in {n.name!r}, not by the patch {patch}"
            else:
                return (f"the image size (Shape {node.name!r}) reaches {n.op_type} node {n.name!r} before it is "
                        f"divided by the patch {patch}")
    return None
