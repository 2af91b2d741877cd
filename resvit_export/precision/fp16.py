"""FP16 ONNX with the ViT precision policy written in as Casts (what TensorRT 11's strong typing needs).

Conversion uses ONNX Runtime's maintained converter (``onnxruntime.transformers.float16``) with:

* ``keep_io_types=True``: the graph still takes and returns float32 (the pipeline feeds float32);
* ``op_block_list`` = the converter's defaults + the policy's FP32 ops (LayerNormalization, Softmax, ...);
* ``node_block_list`` = ``--keep-fp32`` node names + every float node on a *shape-computation path* (anything
  that only feeds Reshape/Resize sizes, Expand/ConstantOfShape shapes, Slice bounds, Range, ...). Those stay
  int64/fp32 so dynamic H/W arithmetic is never rounded to FP16;
* stale ``value_info`` (types recorded by the exporter before conversion) is dropped before conversion and
  re-inferred after, so no tensor keeps a float32 annotation while it now carries float16 data.

The result is checked (onnx.checker + strict shape inference), the kept nodes are verified to compute in FP32,
and -- by default -- ONNX Runtime loads and runs it *in a child process* at several resolutions against the
source graph (a crashing graph must not take the caller down; see :func:`run_isolated`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from resvit_export.errors import GraphRewriteError, InvalidArtifactError, ParityError
from resvit_export.io import atomic_path, sha256_file

from .policy import DEFAULT_FP32_OPS, PrecisionPolicy, resolve_keep_fp32

__all__ = [
    "PrecisionResult",
    "check_drift",
    "make_fp16_onnx",
    "run_isolated",
    "compare_outputs",
    "verify_against_reference",
    "DEFAULT_VERIFY_SIZES",
    "FP16_COSINE_MIN",
]

log = logging.getLogger(__name__)

# Non-square sizes on purpose: a graph that only survives square inputs is a bug.
DEFAULT_VERIFY_SIZES: tuple[tuple[int, int], ...] = ((224, 224), (96, 160), (320, 256))
FP16_COSINE_MIN = 0.999

# Node inputs that carry shapes/indices, never activations: (op_type -> input indices).
_SHAPE_INPUTS = {
    "Reshape": [1], "Expand": [1], "ConstantOfShape": [0], "Tile": [1], "Resize": [1, 2, 3], "Upsample": [1],
    "Slice": [1, 2, 3, 4], "Range": [0, 1, 2], "Unsqueeze": [1], "Squeeze": [1], "Pad": [1, 2, 3],
    "ReduceMean": [1], "ReduceSum": [1], "ReduceMax": [1], "ReduceMin": [1], "TopK": [1], "Split": [1],
    "OneHot": [1], "Gather": [1], "GatherElements": [1], "ScatterND": [1], "CenterCropPad": [1],
}


@dataclass
class PrecisionResult:
    """What a precision step wrote and what it verified."""

    path: str
    precision: str
    kept_fp32_nodes: list[str]
    kept_ops: list[str]
    node_counts: dict[str, int]  # before / after / casts_added / qdq (int8) / kept_fp32
    sha256: str
    source_sha256: str = ""
    parity: list[dict] = field(default_factory=list)  # per size: h, w, cosine, top1_agree, max_abs
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def min_cosine(self) -> float | None:
        return min((p["cosine"] for p in self.parity), default=None)


# ---------------------------------------------------------------------------------------------- helpers

def _load(src: str | os.PathLike):
    import onnx

    src = Path(src)
    if not src.is_file():
        raise InvalidArtifactError(f"ONNX file {src} does not exist; export one first (`resvit-export export`)")
    try:
        return onnx.load(str(src))  # also pulls in external data (the dynamo exporter writes *.onnx.data)
    except Exception as err:  # noqa: BLE001 - onnx raises several unrelated types
        raise InvalidArtifactError(f"cannot read ONNX file {src}: {err}") from err


def save_model_atomic(model, dst: str | os.PathLike) -> Path:
    """Write ``model`` to ``dst`` atomically; graphs over ~1.5 GB get an external-data file ``dst.data``."""
    import onnx

    dst = Path(dst)
    big = model.ByteSize() > 1_500_000_000
    with atomic_path(dst) as tmp:
        if big:
            data_name = dst.name + ".data"
            if (dst.parent / data_name).exists():
                (dst.parent / data_name).unlink()
            onnx.save_model(model, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                            location=data_name)
            # onnx writes the data file next to tmp under the final name, so the rename keeps the link valid
        else:
            onnx.save_model(model, str(tmp))
    return dst


def _shape_path_nodes(graph) -> set[str]:
    """Names of nodes whose outputs only ever feed shape/index inputs (the shape-computation subgraph).

    Walks backwards from the shape inputs of Reshape/Resize/Expand/... and stops at ``Shape``/``Size`` (whose
    *input* is an activation) and at graph inputs. A node is on the path only if *all* its consumers are.
    """
    producers = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i, name in enumerate(n.input):
            consumers.setdefault(name, []).append((n, i))
    graph_outputs = {o.name for o in graph.output}
    on_path: set[str] = set()
    frontier = []
    for n in graph.node:
        for i in _SHAPE_INPUTS.get(n.op_type, []):
            if i < len(n.input) and n.input[i] in producers:
                frontier.append(producers[n.input[i]])
    while frontier:
        node = frontier.pop()
        if node.name in on_path:
            continue
        ok = all(
            name not in graph_outputs
            and all((c.name in on_path and c is not node) or i in _SHAPE_INPUTS.get(c.op_type, [])
                    for c, i in consumers.get(name, []))
            for name in node.output
        )
        if not ok:
            continue
        on_path.add(node.name)
        if node.op_type in ("Shape", "Size"):
            continue
        for name in node.input:
            if name in producers:
                frontier.append(producers[name])
    return on_path


def _elem_types(model) -> dict[str, int]:
    g = model.graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(g.value_info) + list(g.input) + list(g.output)}
    types.update({t.name: t.data_type for t in g.initializer})
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    types[n.output[0]] = a.t.data_type
    return types


def toposort(model):
    """Sort ``model.graph.node`` topologically in place (stable). The FP16 converter appends its Casts at the
    end of the node list; ONNX Runtime sorts at load time but the checker and TensorRT's parser do not."""
    g = model.graph
    available = {i.name for i in g.input} | {t.name for t in g.initializer} | {""}
    nodes = list(g.node)
    ordered, pending = [], nodes
    while pending:
        rest = []
        for n in pending:
            if all(i in available for i in n.input):
                ordered.append(n)
                available.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            missing = sorted({i for n in rest for i in n.input if i not in available})[:5]
            raise GraphRewriteError(f"graph has a cycle or dangling inputs {missing}; cannot sort it")
        pending = rest
    del g.node[:]
    g.node.extend(ordered)
    return model


def dedupe_casts(model) -> int:
    """Drop duplicate Cast nodes that the converter emits when one tensor feeds several FP32-kept nodes.

    ``convert_float_to_float16`` names the Cast it inserts before a blocked node ``<tensor>_cast_to_fp32`` --
    once per consumer, so a tensor shared by two LayerNormalizations (the exporter de-duplicates identical
    initializers, e.g. every LN's bias) yields two nodes writing the same name: not SSA, rejected by the
    checker (and by ORT). The duplicates are identical (same input, same ``to``), so keeping the first is exact.
    Returns the number removed; a non-identical duplicate raises GraphRewriteError.
    """
    seen: dict[str, object] = {}
    keep, dropped = [], 0
    for n in model.graph.node:
        dup = [o for o in n.output if o in seen]
        if not dup:
            keep.append(n)
            seen.update({o: n for o in n.output})
            continue
        first = seen[dup[0]]
        if (n.op_type == "Cast" and first.op_type == "Cast" and list(n.input) == list(first.input)
                and list(n.output) == list(first.output)
                and [a.i for a in n.attribute if a.name == "to"] == [a.i for a in first.attribute if a.name == "to"]):
            dropped += 1
            continue
        raise GraphRewriteError(f"FP16 conversion wrote tensor {dup[0]!r} twice ({first.name} and {n.name}) with "
                                f"different producers; keep one of them in FP32 with --keep-fp32")
    if dropped:
        del model.graph.node[:]
        model.graph.node.extend(keep)
    names: Counter = Counter()
    for n in model.graph.node:  # ORT refuses duplicate node names too ("two nodes with same node name")
        if n.name:
            names[n.name] += 1
            if names[n.name] > 1:
                n.name = f"{n.name}__{names[n.name] - 1}"
    return dropped


def _infer(model, what: str):
    import onnx

    try:
        onnx.checker.check_model(model, full_check=False)
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as err:  # noqa: BLE001
        raise GraphRewriteError(f"{what}: the converted graph fails the ONNX checker/shape inference: {err}") from err


# ------------------------------------------------------------------------------------- running in a child

def run_isolated(onnx_path: str | os.PathLike, feeds_list: Sequence[dict[str, np.ndarray]],
                 timeout: float | None = 900.0) -> list[list[np.ndarray]]:
    """Run ``onnx_path`` in ONNX Runtime (CPU) in a child process; return the outputs (in graph order) per feed.

    Precision graphs are never loaded in this process: ORT 1.31 was seen to SIGSEGV while loading a
    checker-valid FP16 graph. A crash becomes InvalidArtifactError naming the signal and the phase.
    """
    from resvit_export.validate.runners import onnx_io_names, run_onnx_timed

    _, out_names = onnx_io_names(onnx_path)
    res, _ = run_onnx_timed(onnx_path, list(feeds_list), isolated=True, repeats=1, timeout=timeout)
    return [[r[name] for name in out_names] for r in res]


def compare_outputs(ref: np.ndarray, out: np.ndarray) -> dict:
    """Cosine (over the whole output), top-1 agreement (argmax of the last axis) and max-abs error."""
    a = np.asarray(ref, dtype=np.float64).ravel()
    b = np.asarray(out, dtype=np.float64).ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    cos = float(a @ b / denom) if denom > 0 else float(np.array_equal(a, b))
    if not np.all(np.isfinite(b)):
        cos = float("nan")
    top1 = float(np.mean(np.argmax(ref, axis=-1) == np.argmax(out, axis=-1))) if np.ndim(ref) >= 1 else 1.0
    return {"cosine": cos, "top1_agree": top1, "max_abs": float(np.max(np.abs(a - b))) if a.size else 0.0}


def _verify_feeds(input_name: str, sizes: Iterable[tuple[int, int]], batch: int, seed: int) -> list[dict]:
    from resvit_export.validate.inputs import synthetic_images

    feeds = []
    for k, (h, w) in enumerate(sizes):
        x = synthetic_images(batch, h, w, seed + k)  # image-like, deterministic
        feeds.append({input_name: x})
    return feeds


def static_batch(model) -> int | None:
    """The image input's batch size when the graph fixes it (e.g. packed-sequence models), else None."""
    inits = {t.name for t in model.graph.initializer}
    for i in model.graph.input:
        if i.name not in inits:
            dims = i.type.tensor_type.shape.dim
            if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
                return int(dims[0].dim_value)
            return None
    return None


def check_drift(parity: list[dict], cosine_min: float, label: str, hint: str) -> None:
    """Raise ParityError when the worst size's cosine vs the FP32 graph is below ``cosine_min`` (NaN counts as worst)."""
    worst = min(parity, key=lambda r: r["cosine"] if r["cosine"] == r["cosine"] else -1.0)
    if not worst["cosine"] >= cosine_min:
        raise ParityError(
            f"{label} graph drifts from FP32 at {worst['h']}x{worst['w']}: cosine {worst['cosine']:.6f} < "
            f"{cosine_min} (top-1 agreement {worst['top1_agree']:.2f}); {hint}")


def verify_against_reference(ref_onnx: str | os.PathLike, onnx_path: str | os.PathLike,
                             sizes: Iterable[tuple[int, int]] = DEFAULT_VERIFY_SIZES, batch: int = 2,
                             seed: int = 0) -> list[dict]:
    """Run both graphs in child processes at each size; return per-size metrics of the first output."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise InvalidArtifactError(f"{onnx_path} has inputs {inputs}; precision checks expect one image input")
    fixed = static_batch(model)
    batch = fixed or batch
    sizes = [tuple(s) for s in sizes]
    feeds = _verify_feeds(inputs[0], sizes, batch, seed)
    ref = run_isolated(ref_onnx, feeds)
    out = run_isolated(onnx_path, feeds)
    rows = []
    for (h, w), r, o in zip(sizes, ref, out):
        if r[0].shape != o[0].shape:
            raise InvalidArtifactError(f"{onnx_path} returned shape {o[0].shape} at {h}x{w}; the source returned "
                                       f"{r[0].shape} (a dynamic axis did not survive conversion)")
        rows.append({"h": h, "w": w, "batch": batch, **compare_outputs(r[0], o[0])})
    return rows


# ------------------------------------------------------------------------------------------------- FP16

def convert_model_fp16(model, policy: PrecisionPolicy):
    """In-memory conversion (see module docstring). Returns (fp16 model, kept node names, shape-path nodes)."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    g = model.graph
    shape_nodes = _shape_path_nodes(g)
    keep_nodes = policy.nodes_to_keep(g)
    # Only float-producing shape-path nodes matter; int64 ones are never touched by the converter anyway.
    types = _elem_types(_infer(model, "source graph"))
    float_shape_nodes = [n.name for n in g.node if n.name in shape_nodes
                         and any(types.get(o) in (1, 10, 11) for o in n.output)]
    del g.value_info[:]  # stale exporter annotations; re-inferred below
    op_block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(policy.keep_ops) | set(policy.extra_ops))
    node_block = sorted(set(keep_nodes) | set(float_shape_nodes))
    m16 = convert_float_to_float16(model, keep_io_types=True, op_block_list=op_block, node_block_list=node_block)
    del m16.graph.value_info[:]
    dedupe_casts(m16)
    toposort(m16)
    m16 = _infer(m16, "FP16 conversion")
    return m16, keep_nodes, float_shape_nodes


def _check_kept_fp32(model, keep_nodes: Iterable[str]) -> None:
    types = _elem_types(model)
    bad = []
    by_name = {n.name: n for n in model.graph.node}
    for name in keep_nodes:
        node = by_name.get(name)
        if node is None:
            bad.append(f"{name} (missing after conversion)")
            continue
        for t in list(node.input) + list(node.output):
            if t and types.get(t) == 10:  # FLOAT16
                bad.append(f"{name}:{t}")
    if bad:
        raise GraphRewriteError(f"nodes the policy keeps in FP32 still see FP16 tensors: {bad[:8]}")


def make_fp16_onnx(src: str | os.PathLike, dst: str | os.PathLike, keep_fp32: str | Iterable[str] | None = None,
                   *, keep_default_ops: bool = True, verify: bool = True,
                   verify_sizes: Iterable[tuple[int, int]] = DEFAULT_VERIFY_SIZES,
                   cosine_min: float = FP16_COSINE_MIN) -> PrecisionResult:
    """Write an FP16 copy of ``src`` to ``dst`` with the ViT policy's ops kept in FP32 and float32 IO.

    Args:
        keep_fp32: extra node names and/or op types to keep in FP32 (``--keep-fp32``; comma-separated ok).
        keep_default_ops: keep DEFAULT_FP32_OPS (LayerNormalization, Softmax, ReduceMean, ReduceSum) in FP32.
        verify: run source and result in ONNX Runtime (child processes) at ``verify_sizes`` and require
            cosine >= ``cosine_min`` at each; the file is only written if this passes.

    Raises:
        UsageError: a ``keep_fp32`` entry is neither a node name nor an op type (lists real names).
        GraphRewriteError: the converted graph fails the checker or a kept node still sees FP16.
        InvalidArtifactError: ONNX Runtime crashes or fails on the converted graph (run in a child process).
        ParityError: outputs drift below ``cosine_min`` at a size.
    """
    model = _load(src)
    policy = resolve_keep_fp32(model, keep_fp32, "fp16", DEFAULT_FP32_OPS if keep_default_ops else ())
    before = len(model.graph.node)
    m16, keep_nodes, shape_nodes = convert_model_fp16(model, policy)
    _check_kept_fp32(m16, keep_nodes)
    counts = Counter(n.op_type for n in m16.graph.node)
    inits = Counter(t.data_type for t in m16.graph.initializer)
    node_counts = {"before": before, "after": len(m16.graph.node), "casts_added": counts.get("Cast", 0)
                   - sum(1 for n in model.graph.node if n.op_type == "Cast"), "kept_fp32": len(keep_nodes),
                   "shape_path_kept": len(shape_nodes), "fp16_initializers": inits.get(10, 0),
                   "fp32_initializers": inits.get(1, 0)}
    dst = Path(dst)
    parity: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="resvit-fp16-", dir=dst.parent if dst.parent.exists() else None) as tmp:
        staged = save_model_atomic(m16, Path(tmp) / dst.name)
        if verify:
            parity = verify_against_reference(src, staged, verify_sizes)
            check_drift(parity, cosine_min, "FP16", "keep more nodes in FP32 with --keep-fp32 NAME|OP")
        final = save_model_atomic(m16, dst)
    result = PrecisionResult(str(final), "fp16", keep_nodes, sorted(set(policy.keep_ops) | set(policy.extra_ops)),
                             node_counts, sha256_file(final), sha256_file(src), parity,
                             {"policy": policy.to_dict(), "shape_path_nodes_kept": shape_nodes,
                              "converter": "onnxruntime.transformers.float16.convert_float_to_float16"})
    log.info("FP16 ONNX %s: %d nodes kept FP32, %d Casts added", final, len(keep_nodes), node_counts["casts_added"])
    return result
