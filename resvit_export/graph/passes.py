"""Graph rewrite passes on an onnx-graphsurgeon Graph: plain ``fn(graph, ctx) -> PassResult`` functions.

Each pass edits ``graph`` in place, ends with ``graph.cleanup().toposort()``, and says what it changed.
``PASSES`` is the order ``rewrite.apply_rewrites`` runs them in; the driver proves each one output-preserving.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .rewrite import RewriteContext

__all__ = ["PassResult", "PASSES", "PASS_NAMES", "fold_constants", "resize_antialias", "prescale_q",
           "drop_casts", "layernorm"]


@dataclass
class PassResult:
    """What one pass did: ``changes`` (one line per edit) and ``flags`` (things it refused to touch, and why)."""

    name: str
    changes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # observations that are neither edits nor problems

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _gs():
    from resvit_export._optional import require

    gs = require("onnx_graphsurgeon")
    gs.logger.G_LOGGER.severity = gs.logger.G_LOGGER.ERROR  # fold_constants is chatty at WARNING
    return gs


def _const_value(tensor):
    """numpy value of a gs.Constant, or of a Variable produced by a Constant node; else None."""
    gs = _gs()
    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values)
    if len(tensor.inputs) == 1 and tensor.inputs[0].op == "Constant":
        v = tensor.inputs[0].attrs.get("value")
        return None if v is None else np.asarray(v.values)
    return None


def _scalar(tensor):
    v = _const_value(tensor)
    return None if v is None or v.size != 1 else v


def _bypass(graph, node) -> bool:
    """Remove a single-input pass-through node by rewiring its consumers to its input. False if not possible."""
    inp, out = node.inputs[0], node.outputs[0]
    if out in graph.outputs:
        if inp in graph.inputs or inp in graph.outputs or not inp.inputs:
            return False  # graph output must stay a distinct, produced tensor
        # Let the producer of ``inp`` write the graph output directly.
        producer = inp.inputs[0]
        for consumer in list(inp.outputs):
            if consumer is not node:
                consumer.inputs[consumer.inputs.index(inp)] = out
        producer.outputs[producer.outputs.index(inp)] = out
        node.outputs.clear()
        node.inputs.clear()
        return True
    for consumer in list(out.outputs):
        for i, t in enumerate(consumer.inputs):
            if t is out:
                consumer.inputs[i] = inp
    node.outputs.clear()
    node.inputs.clear()
    return True


# 1 ------------------------------------------------------------------------------------------------------------
def fold_constants(graph, ctx) -> PassResult:
    """Fold constant subgraphs with ONNX Runtime (gs ``fold_constants``), then cleanup + toposort."""
    _gs()  # sets graphsurgeon's logger to ERROR before it folds
    res = PassResult("fold_constants")
    before = len(graph.nodes)
    if getattr(graph, "ir_version", None) is None:
        # WAR: gs exports with onnx's newest IR version when the graph has none, which ORT may refuse (IR 14 > 13).
        graph.ir_version = 10
    # Outputs over 1 MiB stay computed: folding them would bloat the file; TensorRT folds them at build time.
    graph.fold_constants(error_ok=True, size_threshold=1 << 20).cleanup().toposort()
    if len(graph.nodes) != before:
        res.changes.append(f"folded/removed {before - len(graph.nodes)} node(s)")
    return res


# 2 ------------------------------------------------------------------------------------------------------------
def _resize_upsamples(node, ctx) -> tuple[bool, str]:
    """True when the Resize can only upsample (then antialias is a no-op and dropping it is exact)."""
    data = node.inputs[0]
    value = _const_value(data)
    scales = _const_value(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2].name else None
    sizes = _const_value(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3].name else None
    in_shape = value.shape if value is not None else (data.shape or None)
    if scales is not None and scales.size:
        return bool(np.all(scales >= 1)), f"constant scales {scales.tolist()}"
    if sizes is not None and in_shape is not None and all(isinstance(d, int) for d in in_shape):
        ok = all(int(s) >= int(d) for s, d in zip(sizes.tolist(), in_shape))
        return ok, f"constant sizes {sizes.tolist()} from {list(in_shape)}"
    if value is None or value.ndim < 2:
        return False, "input is not a constant table and the output size is only known at run time"
    h0, w0 = value.shape[-2:]
    p = ctx.patch_size
    grids = [(prof.min[0] // p, prof.min[1] // p) for prof in ctx.profiles]
    gh, gw = min(g[0] for g in grids), min(g[1] for g in grids)
    ok = gh >= h0 and gw >= w0
    return ok, f"constant {h0}x{w0} table, profile minimum token grid {gh}x{gw}"


def resize_antialias(graph, ctx) -> PassResult:
    """Drop ``antialias=1`` from Resize nodes that only ever upsample (exact); flag the others."""
    res = PassResult("resize_antialias")
    for node in graph.nodes:
        if node.op != "Resize" or not int(node.attrs.get("antialias", 0)):
            continue
        ok, why = _resize_upsamples(node, ctx)
        if ok:
            node.attrs["antialias"] = 0
            res.changes.append(f"{node.name}: antialias 1 -> 0 (upsampling only: {why})")
        else:
            res.flags.append(f"{node.name}: antialias=1 kept, dropping it is not exact ({why}); TensorRT's parser "
                             "rejects it (lint TRT001): raise the profile minimum or export with antialias=False")
    graph.cleanup().toposort()
    return res


# 3 ------------------------------------------------------------------------------------------------------------
def _scale_mul(tensor):
    """(input, scalar) when ``tensor`` = Mul(x, scalar const) or Div(x, scalar const) as a multiplier."""
    if len(tensor.inputs) != 1:
        return None
    node = tensor.inputs[0]
    if node.op == "Mul":
        for i in (0, 1):
            s = _scalar(node.inputs[1 - i])
            if s is not None:
                return node, node.inputs[i], s
    if node.op == "Div":
        s = _scalar(node.inputs[1])
        if s is not None and float(s.reshape(())) != 0:
            return node, node.inputs[0], (1.0 / s).astype(s.dtype)
    return None


def _feeds_softmax(tensor, depth=3) -> bool:
    for node in tensor.outputs:
        if node.op == "Softmax":
            return True
        if depth and node.op in ("Add", "Mul", "Div", "Where", "Cast") and _feeds_softmax(node.outputs[0], depth - 1):
            return True
    return False


def prescale_q(graph, ctx) -> PassResult:
    """Move the attention scale onto Q before the first attention MatMul (TensorRT's MHA fusion wants that).

    Handles dynamo's SDPA form ``MatMul(Mul(q, s), Mul(kT, s))`` (sqrt-scale on both) and the classic
    ``Div/Mul(MatMul(q, kT), c)`` before Softmax. The combined scalar multiplies Q only.
    """
    gs = _gs()
    res = PassResult("prescale_q")
    already = 0
    for mm in [n for n in graph.nodes if n.op == "MatMul"]:
        if len(mm.outputs) != 1:
            continue
        out = mm.outputs[0]
        post = None
        if len(out.outputs) == 1 and out not in graph.outputs:
            cand = out.outputs[0]
            sm = _scale_mul(cand.outputs[0]) if cand.op in ("Mul", "Div") else None
            if sm is not None and sm[1] is out and _feeds_softmax(cand.outputs[0]) \
                    and cand.outputs[0] not in graph.outputs:
                post = cand
        if post is None and not _feeds_softmax(out):
            continue
        q, k = mm.inputs[0], mm.inputs[1]
        scale = np.ones((), dtype=np.float32)
        moved = []
        k_mul = _scale_mul(k)
        if k_mul and len(k.outputs) == 1 and k not in graph.outputs:
            node, k_src, s = k_mul
            scale = scale * s.reshape(())
            mm.inputs[1] = k_src
            moved.append(f"K {node.name}")
        if post is not None:
            _, _, s = _scale_mul(post.outputs[0])
            scale = scale * s.reshape(())
            post_out = post.outputs[0]
            for consumer in list(post_out.outputs):
                consumer.inputs[consumer.inputs.index(post_out)] = out
            post.outputs.clear()
            moved.append(f"post-QK {post.name}")
        if not moved:
            if _scale_mul(q) is not None:
                already += 1
            continue
        q_mul = _scale_mul(q)
        dtype = q.dtype if q.dtype is not None else np.float32
        if q_mul and len(q.outputs) == 1 and q_mul[0].op == "Mul":
            node, q_src, s = q_mul
            total = (s.reshape(()).astype(np.float64) * scale.astype(np.float64)).astype(s.dtype)
            node.inputs.clear()
            node.inputs.extend([q_src, gs.Constant(f"{node.name}_qscale", np.array(total, dtype=s.dtype))])
            where = f"into Q {node.name}"
        else:
            total = np.array(scale, dtype=np.dtype(dtype))
            new_q = gs.Variable(f"{mm.name}_q_scaled", dtype=q.dtype, shape=q.shape)
            graph.nodes.append(gs.Node("Mul", f"{mm.name}_q_prescale",
                                       inputs=[q, gs.Constant(f"{mm.name}_qscale", total)], outputs=[new_q]))
            mm.inputs[0] = new_q
            where = f"as new Mul {mm.name}_q_prescale"
        res.changes.append(f"{mm.name}: scale {float(np.asarray(total).reshape(())):.6g} from {', '.join(moved)} "
                           f"folded {where}")
    if already:
        res.notes.append(f"{already} attention MatMul(s) already had the scale on Q only")
    graph.cleanup().toposort()
    return res


# 4 ------------------------------------------------------------------------------------------------------------
# Cast A->B->C may skip B when B holds every value of A exactly.
_WIDENS = {
    (np.dtype("float16"), np.dtype("float32")), (np.dtype("float16"), np.dtype("float64")),
    (np.dtype("float32"), np.dtype("float64")), (np.dtype("int8"), np.dtype("int32")),
    (np.dtype("int8"), np.dtype("int64")), (np.dtype("int32"), np.dtype("int64")),
    (np.dtype("uint8"), np.dtype("int32")), (np.dtype("uint8"), np.dtype("int64")),
}


def _np_dtype(onnx_type):
    import onnx

    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(int(onnx_type)))
    except Exception:  # noqa: BLE001 - exotic types (fp8, bf16): leave those casts alone
        return None


def _dtype(t):
    try:
        return np.dtype(t.dtype) if t.dtype is not None else None
    except TypeError:
        return None


def drop_casts(graph, ctx) -> PassResult:
    """Remove Identity nodes, Casts to the tensor's own type, and lossless Cast->Cast chains."""
    res = PassResult("drop_casts")
    for node in list(graph.nodes):
        if not node.outputs or not node.inputs:
            continue
        if node.op == "Identity":
            if _bypass(graph, node):
                res.changes.append(f"{node.name}: Identity removed")
        elif node.op == "Cast":
            src, to = _dtype(node.inputs[0]), _np_dtype(node.attrs.get("to"))
            if src is not None and src == to:
                if _bypass(graph, node):
                    res.changes.append(f"{node.name}: Cast to its own type {to} removed")
                continue
            mid = node.inputs[0]
            if len(mid.inputs) == 1 and mid.inputs[0].op == "Cast" and len(mid.outputs) == 1 \
                    and mid not in graph.outputs:
                inner = mid.inputs[0]
                a, b = _dtype(inner.inputs[0]), _np_dtype(inner.attrs.get("to"))
                if a is not None and (a == b or (a, b) in _WIDENS):
                    node.inputs[0] = inner.inputs[0]
                    res.changes.append(f"{inner.name}->{node.name}: Cast chain {a}->{b}->{to} shortened")
                    if a == to and _bypass(graph, node):
                        res.changes.append(f"{node.name}: chain was a round trip, removed")
    graph.cleanup().toposort()
    return res


# 5 ------------------------------------------------------------------------------------------------------------
def _axes(node):
    if "axes" in node.attrs:
        return list(node.attrs["axes"])
    if len(node.inputs) > 1:
        v = _const_value(node.inputs[1])
        return None if v is None else v.reshape(-1).tolist()
    return None


def _last_axis(axes, rank) -> bool:
    return axes is not None and len(axes) == 1 and (axes[0] == -1 or (rank is not None and axes[0] == rank - 1))


def _only(tensor, op):
    """The single consumer of ``tensor`` if it is ``op``."""
    return tensor.outputs[0] if len(tensor.outputs) == 1 and tensor.outputs[0].op == op else None


def _other(node, tensor):
    return node.inputs[1] if node.inputs[0] is tensor else node.inputs[0]


def _match_ln(graph, r1):
    """Match ReduceMean-Sub-Pow-ReduceMean-Add-Sqrt-Div[-Mul-Add] from the first ReduceMean; dict or None."""
    x = r1.inputs[0]
    rank = len(x.shape) if x.shape else None
    if not _last_axis(_axes(r1), rank) or not int(r1.attrs.get("keepdims", 1)):
        return None
    mean = r1.outputs[0]
    subs = [n for n in mean.outputs if n.op == "Sub" and n.inputs[0] is x and n.inputs[1] is mean]
    if len(mean.outputs) != 1 or len(subs) != 1:
        return None
    d = subs[0].outputs[0]
    sq = [n for n in d.outputs if (n.op == "Pow" and n.inputs[0] is d and _scalar(n.inputs[1]) is not None
                                   and float(_scalar(n.inputs[1]).reshape(())) == 2.0)
          or (n.op == "Mul" and n.inputs[0] is d and n.inputs[1] is d)]
    div = [n for n in d.outputs if n.op == "Div" and n.inputs[0] is d]
    if len(d.outputs) != 2 or len(sq) != 1 or len(div) != 1:
        return None
    r2 = _only(sq[0].outputs[0], "ReduceMean")
    if r2 is None or not _last_axis(_axes(r2), rank):
        return None
    add = _only(r2.outputs[0], "Add")
    eps = _scalar(_other(add, r2.outputs[0])) if add is not None else None
    sqrt = _only(add.outputs[0], "Sqrt") if eps is not None else None
    if sqrt is None or div[0].inputs[1] is not sqrt.outputs[0] or len(sqrt.outputs[0].outputs) != 1:
        return None
    y, gamma, beta, nodes = div[0].outputs[0], None, None, [r1, subs[0], sq[0], r2, add, sqrt, div[0]]
    mul = _only(y, "Mul")
    if mul is not None and _const_value(_other(mul, y)) is not None:
        gamma, y = _const_value(_other(mul, y)), mul.outputs[0]
        nodes.append(mul)
        badd = _only(y, "Add")
        if badd is not None and _const_value(_other(badd, y)) is not None:
            beta, y = _const_value(_other(badd, y)), badd.outputs[0]
            nodes.append(badd)
    return {"x": x, "y": y, "eps": float(eps.reshape(())), "gamma": gamma, "beta": beta, "nodes": nodes}


def layernorm(graph, ctx) -> PassResult:
    """Keep LayerNorm native: count LayerNormalization nodes and fuse decomposed LN patterns into one.

    Fusion needs opset >= 17 and a target whose parser has LayerNormalization (not TensorRT 8.5 / jetpack5).
    """
    gs = _gs()
    res = PassResult("layernorm")
    native = sum(n.op == "LayerNormalization" for n in graph.nodes)
    opset = graph.opset or 0
    target = getattr(ctx, "target", None)
    no_ln_target = target == "jetpack5"
    for r1 in [n for n in graph.nodes if n.op == "ReduceMean"]:
        if not r1.outputs or not r1.inputs:
            continue  # already consumed by an earlier fusion
        m = _match_ln(graph, r1)
        if m is None:
            continue
        if opset < 17 or no_ln_target:
            why = f"opset {opset} < 17" if opset < 17 else "target jetpack5 (TensorRT 8.5) has no LayerNormalization"
            res.flags.append(f"{r1.name}: decomposed LayerNorm kept ({why})")
            continue
        dim = m["x"].shape[-1] if m["x"].shape and isinstance(m["x"].shape[-1], int) else None
        gamma, beta = m["gamma"], m["beta"]
        size = dim if gamma is None else gamma.size
        if gamma is None or beta is None:
            if size is None:
                res.flags.append(f"{r1.name}: decomposed LayerNorm kept (last dimension unknown, no gamma)")
                continue
        dtype = _dtype(m["x"]) or np.dtype("float32")
        gamma = np.ones(size, dtype) if gamma is None else gamma.reshape(-1).astype(dtype)
        beta = np.zeros(gamma.size, dtype) if beta is None else np.broadcast_to(beta.reshape(-1), gamma.shape).astype(dtype)
        if gamma.ndim != 1 or (dim is not None and gamma.size != dim):
            res.flags.append(f"{r1.name}: decomposed LayerNorm kept (gamma shape {gamma.shape} is not [D])")
            continue
        y = m["y"]
        y.inputs.clear()
        name = f"{r1.name}_fused_ln"
        graph.nodes.append(gs.Node("LayerNormalization", name, attrs={"axis": -1, "epsilon": m["eps"]},
                                   inputs=[m["x"], gs.Constant(f"{name}_scale", gamma),
                                           gs.Constant(f"{name}_bias", beta)], outputs=[y]))
        for n in m["nodes"]:
            n.outputs.clear()
        res.changes.append(f"{name}: fused {len(m['nodes'])} nodes into LayerNormalization (eps={m['eps']:g})")
    graph.cleanup().toposort()
    total = sum(n.op == "LayerNormalization" for n in graph.nodes)
    res.notes.append(f"LayerNormalization nodes: {native} before, {total} after")
    if total == 0:
        res.flags.append("no LayerNormalization node in the graph (LayerNorm absent or left decomposed)")
    return res


PASSES: tuple[tuple[str, Callable], ...] = (
    ("fold_constants", fold_constants),
    ("resize_antialias", resize_antialias),
    ("prescale_q", prescale_q),
    ("drop_casts", drop_casts),
    ("layernorm", layernorm),
)
PASS_NAMES = tuple(n for n, _ in PASSES)
