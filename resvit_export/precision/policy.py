"""The ViT precision policy: which precision a run asks for, and which ONNX nodes stay FP32.

TensorRT 11 removed the FP16/INT8 builder flags and the INT8 calibrators: every network is strongly typed, so
precision has to be written into the ONNX itself (Casts for FP16, Q/DQ pairs for INT8). This module decides
*what* stays in FP32; :mod:`.fp16` and :mod:`.int8` write it into the graph.

Defaults follow the most-cited ViT failure (NVIDIA/TensorRT#2564, #2709): LayerNormalization overflows in FP16,
Softmax and the attention-score reductions lose the small probabilities. They are kept FP32 unless the user
says otherwise. ``--keep-fp32`` adds node *names* or op *types*; an entry that is neither is a UsageError that
lists real node names, so a typo never silently keeps nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from resvit_export.errors import UsageError

__all__ = [
    "PRECISIONS",
    "DEFAULT_FP32_OPS",
    "INT8_OP_TYPES",
    "PrecisionPolicy",
    "resolve_precision",
    "parse_keep_fp32",
    "resolve_keep_fp32",
]

PRECISIONS = ("fp32", "fp16", "int8")

# Ops kept in FP32 by default in an FP16 graph (ViT-specific; see the module docstring).
DEFAULT_FP32_OPS: tuple[str, ...] = ("LayerNormalization", "Softmax", "ReduceMean", "ReduceSum")

# Ops that get Q/DQ in an INT8 graph: what TensorRT fuses into INT8 kernels. LayerNormalization, Softmax,
# the GELU chain and residual Adds stay in float (TensorRT would run them in float anyway).
INT8_OP_TYPES: tuple[str, ...] = ("MatMul", "Gemm", "Conv")


def resolve_precision(precision: str | None = None, fp16_flag: bool = False, int8_flag: bool = False) -> str:
    """Combine ``--precision`` with the familiar ``--fp16``/``--int8`` spellings into one of PRECISIONS.

    Conflicts are refused, never auto-corrected (Ultralytics silently turns ``half=True int8=True`` into INT8):

    >>> resolve_precision(None, True, False)
    'fp16'
    >>> resolve_precision("int8", False, True)
    'int8'
    """
    if precision is not None:
        p = str(precision).strip().lower()
        if p not in PRECISIONS:
            raise UsageError(f"unknown --precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    else:
        p = None
    if fp16_flag and int8_flag:
        raise UsageError("--fp16 and --int8 conflict: pick one (or --precision fp16|int8)")
    flag = "fp16" if fp16_flag else "int8" if int8_flag else None
    if p is not None and flag is not None and p != flag:
        raise UsageError(f"--precision {p} conflicts with --{flag}: pass only one of them")
    return p or flag or "fp32"


def parse_keep_fp32(items: str | Iterable[str] | None) -> list[str]:
    """Split ``--keep-fp32`` values (repeatable and/or comma-separated) into a clean list."""
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    out: list[str] = []
    for item in items:
        out.extend(p.strip() for p in str(item).split(",") if p.strip())
    return out


@dataclass(frozen=True)
class PrecisionPolicy:
    """What a precision step keeps in FP32: op types (every node of that type) and explicit node names."""

    precision: str = "fp16"
    keep_ops: tuple[str, ...] = DEFAULT_FP32_OPS
    keep_nodes: tuple[str, ...] = ()
    extra_ops: tuple[str, ...] = field(default=())  # op types the user added with --keep-fp32

    def nodes_to_keep(self, graph) -> list[str]:
        """Names of the nodes of ``graph`` (onnx.GraphProto) this policy keeps in FP32, in graph order."""
        ops = set(self.keep_ops) | set(self.extra_ops)
        names = set(self.keep_nodes)
        return [n.name for n in graph.node if n.op_type in ops or n.name in names]

    def to_dict(self) -> dict:
        return {"precision": self.precision, "keep_ops": sorted(set(self.keep_ops) | set(self.extra_ops)),
                "keep_nodes": list(self.keep_nodes)}


def resolve_keep_fp32(model, keep_fp32: str | Iterable[str] | None, precision: str = "fp16",
                      default_ops: Iterable[str] = DEFAULT_FP32_OPS) -> PrecisionPolicy:
    """Validate ``--keep-fp32`` entries against ``model`` (onnx.ModelProto) and build the policy.

    Each entry must be a node name or an op type present in the graph. Anything else raises UsageError naming
    a few real node names (and op types) so the user can copy one.
    """
    entries = parse_keep_fp32(keep_fp32)
    node_names = [n.name for n in model.graph.node]
    name_set = set(node_names)
    op_types = sorted({n.op_type for n in model.graph.node})
    op_set = set(op_types)
    nodes, ops, unknown = [], [], []
    for e in entries:
        if e in name_set:
            nodes.append(e)
        elif e in op_set:
            ops.append(e)
        else:
            unknown.append(e)
    if unknown:
        import difflib

        close = sorted({c for u in unknown for c in difflib.get_close_matches(u, node_names + op_types, n=3)})
        examples = close or [n for n in node_names if n][:5]
        raise UsageError(
            f"--keep-fp32 entries {unknown} are neither node names nor op types in this graph. "
            f"Node names look like: {', '.join(examples)}; op types present: {', '.join(op_types)}. "
            f"(`polygraphy inspect model MODEL.onnx --show layers` lists every node.)"
        )
    return PrecisionPolicy(precision, tuple(default_ops), tuple(dict.fromkeys(nodes)), tuple(dict.fromkeys(ops)))
