"""Range-narrowing check: prove the exported graph is valid over the *whole* requested size range.

``torch.onnx.export(dynamo=True)`` silently narrows or specializes dynamic dims (research tensorrt.md §5.3):
when ``torch.export`` reports a constraint violation, the ONNX exporter applies the suggested fix and
re-exports, so e.g. ``while x.shape[-2] > 16`` yields an ONNX whose input dims are still called
``height``/``width`` but which is only right for 34 <= H <= 67. Nothing fails at export time; ORT then
returns wrong shapes or wrong numbers elsewhere in the range.

After every export this module checks, per requested dim:

(a) ``exported_program.range_constraints`` for the dim's symbol covers the requested [min, max];
(b) the ONNX graph input dim is symbolic (``dim_param``) with the expected name;
(c) the dim was not specialized to a constant in the exported program;
(d) no runtime guard on the size survived decomposition (an equality/divisibility assert that a value range
    cannot express, e.g. ``H % 7 == 0`` left by ``adaptive_avg_pool2d`` to a fixed grid).

Any violation raises :class:`~resvit_export.errors.RangeNarrowedError` naming the dim, the requested and the
exported range and the likely cause.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from resvit_export.errors import RangeNarrowedError

__all__ = ["DimRequest", "check_export", "check_range_constraints", "check_onnx_dims", "check_size_guards",
           "LIKELY_CAUSE"]

LIKELY_CAUSE = (
    "likely cause: Python control flow on a size (`if`/`while` on x.shape), int()/float()/.item() of a size, "
    "torch.linspace/arange grids built from a Python size, or adaptive pooling to a fixed grid; "
    "rerun with --verbose (or torch.export.export) to see the guard and its source line"
)


@dataclass(frozen=True)
class DimRequest:
    """One dynamic dimension that must stay dynamic over ``[min, max]`` (``max`` None = unbounded).

    ``axes`` lists every (input name, axis) carrying the dim, e.g. ``(("pixels", 2),)`` for height.
    """

    name: str
    min: int
    max: int | None
    axes: tuple[tuple[str, int], ...]

    def fmt(self) -> str:
        return _fmt_range(self.min, self.max)


def _fmt_range(lo: int | None, hi: int | None) -> str:
    return f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"


def _as_int(v: Any) -> int | None:
    """A sympy/ValueRanges bound as int, or None when infinite."""
    try:
        import sympy

        if v in (sympy.oo, -sympy.oo) or getattr(v, "is_infinite", False):
            return None
    except ImportError:  # pragma: no cover - torch depends on sympy
        pass
    text = str(v)
    if "oo" in text:
        return None
    return int(v)


def _user_input_nodes(ep) -> dict[str, Any]:
    """Placeholder node per user input, in call order (the ONNX input order)."""
    names = list(ep.graph_signature.user_inputs)
    nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    return {name: nodes[name] for name in names if name in nodes}


def _dim_range(dim_val: Any, ranges: dict) -> tuple[str, int | None, int | None, Any]:
    """(kind, lo, hi, expr) for one dim of a placeholder's fake tensor: kind is 'static', 'symbol' or 'expr'."""
    if isinstance(dim_val, int):
        return "static", dim_val, dim_val, dim_val
    expr = dim_val.node.expr
    if expr.is_number:
        return "static", int(expr), int(expr), expr
    if expr.is_Symbol:
        vr = ranges.get(expr)
        if vr is None:
            return "symbol", None, None, expr
        return "symbol", _as_int(vr.lower), _as_int(vr.upper), expr
    from torch.utils._sympy.value_ranges import bound_sympy

    vr = bound_sympy(expr, {s: ranges[s] for s in expr.free_symbols if s in ranges})
    return "expr", _as_int(vr.lower), _as_int(vr.upper), expr


def check_range_constraints(ep, requests: Sequence[DimRequest], input_names: Sequence[str]) -> dict[str, list]:
    """Checks (a) and (c). Returns ``{dim name: [lo, hi]}`` (hi None = unbounded) as exported.

    ``input_names`` are the ONNX input names in order; they map onto the exported program's user inputs.
    """
    placeholders = list(_user_input_nodes(ep).values())
    if len(placeholders) != len(input_names):
        raise RangeNarrowedError(
            f"exported program has {len(placeholders)} user inputs but {len(input_names)} input names were given "
            f"({', '.join(input_names)}); cannot map dims to check ranges"
        )
    by_name = dict(zip(input_names, placeholders))
    ranges = dict(ep.range_constraints)
    exported: dict[str, list] = {}
    for req in requests:
        seen = None
        for inp, axis in req.axes:
            val = by_name[inp].meta.get("val")
            if val is None:
                raise RangeNarrowedError(f"exported program has no shape for input {inp!r}; cannot check dim {req.name}")
            kind, lo, hi, expr = _dim_range(val.shape[axis], ranges)
            if kind == "static":
                raise RangeNarrowedError(
                    f"dim {req.name!r} ({inp} axis {axis}) was specialized to the constant {lo}: requested "
                    f"{req.fmt()}, exported {_fmt_range(lo, hi)}; {LIKELY_CAUSE}"
                )
            lo_ok = lo is not None and lo <= req.min
            hi_ok = hi is None or (req.max is not None and hi >= req.max)
            if not (lo_ok and hi_ok):
                raise RangeNarrowedError(
                    f"dim {req.name!r} ({inp} axis {axis}) was narrowed by the exporter: requested {req.fmt()}, "
                    f"exported {_fmt_range(lo, hi)} (symbol {expr}); the ONNX would be wrong outside the exported "
                    f"range; {LIKELY_CAUSE}"
                )
            if seen is not None and str(seen) != str(expr):
                raise RangeNarrowedError(
                    f"dim {req.name!r} maps to different symbols ({seen} vs {expr}) on its inputs; the exporter "
                    f"did not tie them together as requested"
                )
            seen = expr
            exported[req.name] = [lo, hi]
    return exported


_COMPARE_TARGETS = {operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge}


def _is_not_one_guard(node, expr) -> bool:
    """``Eq(s, 1)`` negated by ``sym_not``: torch's size-oblivious assumption that a broadcast dim is not 1."""
    import sympy

    if not (isinstance(expr, sympy.Eq) and len(expr.free_symbols) == 1 and 1 in (expr.lhs, expr.rhs)
            and (expr.lhs.is_Symbol or expr.rhs.is_Symbol)):
        return False
    return bool(node.users) and all(getattr(u.target, "__name__", "") == "sym_not" for u in node.users)


def check_size_guards(ep, requests: Sequence[DimRequest], input_names: Sequence[str]) -> list[str]:
    """Check (d): no comparison/assert on a symbolic input size is left in the (decomposed) exported program.

    Such nodes are what remains of a guard the exporter deferred instead of failing (e.g. ``Eq(Mod(H, 7), 0)``
    from ``adaptive_avg_pool2d(x, (7, 7))`` decomposed into a fixed ``avg_pool2d``). A value range cannot
    express them, so check (a) does not see them; the graph is still only right on a subset of the range.

    One kind is *not* an error but returned as an assumption: ``dim != 1`` from torch's size-oblivious
    broadcasting (it assumes a broadcast dim is not 1 instead of specializing). ONNX broadcasting is generic,
    so the graph stays valid at 1; the assumption is recorded and the tests/validate probe the value 1.
    """
    assumptions: list[str] = []
    placeholders = list(_user_input_nodes(ep).values())
    sym_names = {}
    by_name = dict(zip(input_names, placeholders))
    for req in requests:
        for inp, axis in req.axes:
            val = by_name[inp].meta.get("val")
            d = val.shape[axis] if val is not None else None
            if d is not None and not isinstance(d, int):
                for s in d.node.expr.free_symbols:
                    sym_names[str(s)] = req.name
    if not sym_names:
        return assumptions
    for node in ep.graph.nodes:
        if node.op != "call_function":
            continue
        tname = str(node.target)
        # Only real guards: explicit asserts, or comparisons that torch's deferred-runtime-assert pass inserted.
        # Comparisons evaluated inside decompositions (size-oblivious checks like ``size == 1``) are sound
        # and are not guards.
        deferred = "insert_deferred_runtime_asserts" in str(node.meta.get("stack_trace", ""))
        is_guard = ("_assert_scalar" in tname or "sym_constrain_range" in tname or "_assert_async" in tname
                    or (node.target in _COMPARE_TARGETS and deferred))
        if not is_guard:
            continue
        val = node.meta.get("val")
        expr = getattr(getattr(val, "node", None), "expr", None)
        if expr is None:
            # asserts carry their condition as the first argument
            arg = node.args[0] if node.args else None
            aval = getattr(arg, "meta", {}).get("val") if arg is not None else None
            expr = getattr(getattr(aval, "node", None), "expr", None)
        if expr is None or getattr(expr, "free_symbols", None) is None or expr.is_Boolean and expr in (True, False) \
                or str(expr) == "True":
            continue
        hit = sorted({sym_names[str(s)] for s in expr.free_symbols if str(s) in sym_names})
        if hit and _is_not_one_guard(node, expr):
            assumptions.append(f"{hit[0]} != 1")
            continue
        if hit:
            text = str(expr)
            for sym, dim in sym_names.items():
                text = re.sub(rf"\b{re.escape(sym)}\b", dim, text)
            raise RangeNarrowedError(
                f"dim {hit[0]!r} is constrained by a guard the exporter dropped: {text} (requested "
                f"{next(r.fmt() for r in requests if r.name == hit[0])}); the ONNX is only right where it holds; "
                f"{LIKELY_CAUSE}"
            )
    return sorted(set(assumptions))


def _input_dims(model) -> dict[str, list]:
    """``{input name: [int | str | None per axis]}`` from an onnx.ModelProto or an onnx_ir.Model."""
    out = {}
    if hasattr(model, "graph") and hasattr(model.graph, "input") and not callable(getattr(model.graph, "inputs", None)) \
            and hasattr(model, "SerializeToString"):
        for vi in model.graph.input:
            dims = []
            for d in vi.type.tensor_type.shape.dim:
                dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
            out[vi.name] = dims
        return out
    for value in model.graph.inputs:  # onnx_ir
        dims = []
        for d in (value.shape or []):
            dims.append(d if isinstance(d, int) else getattr(d, "value", None))
        out[value.name] = dims
    return out


def check_onnx_dims(model, requests: Sequence[DimRequest]) -> None:
    """Check (b): every requested dim is a ``dim_param`` with the dim's name on the ONNX graph inputs.

    ``model`` is an onnx.ModelProto or an onnx_ir.Model.
    """
    inputs = _input_dims(model)
    for req in requests:
        for inp, axis in req.axes:
            dims = inputs.get(inp)
            if dims is None:
                raise RangeNarrowedError(f"ONNX graph has no input {inp!r} (inputs: {', '.join(inputs)})")
            if axis >= len(dims):
                raise RangeNarrowedError(f"ONNX input {inp!r} has rank {len(dims)}; expected dim {req.name!r} at axis {axis}")
            d = dims[axis]
            if isinstance(d, int):
                raise RangeNarrowedError(
                    f"dim {req.name!r} ({inp} axis {axis}) is the constant {d} in the ONNX graph: requested "
                    f"{req.fmt()}; {LIKELY_CAUSE}"
                )
            if d != req.name:
                raise RangeNarrowedError(
                    f"dim {req.name!r} ({inp} axis {axis}) is named {d or '<unknown>'!r} in the ONNX graph, "
                    f"expected {req.name!r}"
                )


def rename_onnx_dims(ir_model, requests: Iterable[DimRequest], exported_names: dict[str, str]) -> None:
    """Rename symbolic dims on the ONNX IR model's inputs/outputs (old dim_param -> request name)."""
    if not exported_names:
        return
    import onnx_ir as ir

    for value in list(ir_model.graph.inputs) + list(ir_model.graph.outputs):
        if value.shape is None:
            continue
        dims = list(value.shape)
        changed = False
        for i, d in enumerate(dims):
            if isinstance(d, ir.SymbolicDim) and d.value in exported_names:
                dims[i] = ir.SymbolicDim(exported_names[d.value])
                changed = True
        if changed:
            value.shape = ir.Shape(dims)


def check_export(onnx_program, model_proto, requests: Sequence[DimRequest], input_names: Sequence[str],
                 assumptions: list | None = None) -> dict:
    """Run checks (a)-(d); return the exported ranges ``{dim: [lo, hi]}``. Raises RangeNarrowedError.

    ``assumptions`` (a list, optional) receives torch's ``dim != 1`` assumptions (see :func:`check_size_guards`).
    """
    ep = onnx_program.exported_program
    if ep is None:
        raise RangeNarrowedError("the ONNX program carries no exported program; cannot prove the dynamic ranges")
    exported = check_range_constraints(ep, requests, input_names)
    found = check_size_guards(ep, requests, input_names)
    check_onnx_dims(model_proto, requests)
    if assumptions is not None:
        assumptions.extend(found)
    return exported
