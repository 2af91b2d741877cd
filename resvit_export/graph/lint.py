"""Lint an ONNX graph against a TensorRT ONNX parser version, before anyone tries to build an engine.

Only ``onnx`` is needed (no TensorRT, no GPU). Each finding names the node, the rule id from ``rules.RULES`` and
the fix; ``LintReport`` is falsy when any error was found.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .rules import ERROR, WARNING, get_rule
from .trt_ops import TrtTarget, get_target

__all__ = ["Finding", "LintReport", "lint_onnx"]

_RESIZE_COORD_OK = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}


@dataclass(frozen=True)
class Finding:
    """One problem: which rule (id/severity), which node (name + op), what is wrong, how to fix it, and the source."""

    rule_id: str
    severity: str
    node: str
    op: str
    message: str
    fix: str
    source: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class LintReport:
    """All findings for one target; falsy when any finding is an error. ``to_dict`` is the JSON form."""

    target: str
    label: str
    model: str
    opset: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    def rule_ids(self) -> set[str]:
        return {f.rule_id for f in self.findings}

    def __bool__(self) -> bool:
        return not self.errors

    def __str__(self) -> str:
        return (f"lint {self.model} for {self.label}: {len(self.errors)} error(s), {len(self.warnings)} warning(s)")

    def to_dict(self) -> dict:
        return {"target": self.target, "label": self.label, "model": self.model, "opset": self.opset,
                "passed": bool(self), "errors": len(self.errors), "warnings": len(self.warnings),
                "findings": [f.to_dict() for f in self.findings]}


def _load(path_or_model):
    onnx = __import__("resvit_export._optional", fromlist=["require"]).require("onnx")
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model, "<model>"
    from resvit_export.errors import InvalidArtifactError

    path = os.fspath(path_or_model)
    try:
        return onnx.load(path), path
    except Exception as err:  # noqa: BLE001 - any decode failure means a bad file
        raise InvalidArtifactError(f"cannot read ONNX model {path} ({err}); pass a .onnx file") from err


def _shape(value_info):
    """Dims of a ValueInfoProto as a tuple (int, str or None per dim), or None when the rank is unknown."""
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim)


def _shapes_differ(a, b) -> bool:
    """True when some dim is known on both sides (value or symbol) and differs; unknown dims prove nothing."""
    return any(x is not None and y is not None and x != y for x, y in zip(a, b))


def _iter_nodes(graph, prefix=""):
    """Every node, subgraphs included, with a display name that shows where it lives."""
    for i, node in enumerate(graph.node):
        name = prefix + (node.name or f"{node.op_type}_{i}")
        yield node, name
        for attr in node.attribute:
            if attr.type == attr.GRAPH:
                yield from _iter_nodes(attr.g, f"{name}/{attr.name}/")
            for sub in attr.graphs:
                yield from _iter_nodes(sub, f"{name}/{attr.name}/")


def _iter_value_infos(graph):
    yield from graph.input
    yield from graph.output
    yield from graph.value_info
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == attr.GRAPH:
                yield from _iter_value_infos(attr.g)


def _iter_initializers(graph):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == attr.GRAPH:
                yield from _iter_initializers(attr.g)


def _attr(node, name, default=None):
    import onnx

    for a in node.attribute:
        if a.name == name:
            v = onnx.helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def _constant_names(graph) -> set[str]:
    """Tensors the parser imports as weights: initializers and Constant outputs (its ``is_weights()`` inputs)."""
    names = {i.name for i in graph.initializer}
    names |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    return names


def _constant_values(graph) -> dict:
    """name -> numpy array for initializers and Constant(value=...) outputs of ``graph``."""
    from onnx import numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and (v := _attr(n, "value")) is not None:
            values[n.output[0]] = numpy_helper.to_array(v)
    return values


def _is_decomposed_ln_root(node, consumers) -> bool:
    """ReduceMean whose output feeds a Sub that feeds Pow/Mul -> ReduceMean (the variance of a decomposed LN)."""
    if node.op_type != "ReduceMean":
        return False
    for sub in consumers.get(node.output[0], []):
        if sub.op_type != "Sub":
            continue
        for sq in consumers.get(sub.output[0], []):
            if sq.op_type in ("Pow", "Mul") and any(n.op_type == "ReduceMean" for n in consumers.get(sq.output[0], [])):
                return True
    return False


def _resized_dims(node, const_values) -> int | None:
    """How many dimensions a Resize changes, when its scales or sizes are constants; None when unknown."""
    import numpy as np

    scales = const_values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if scales is not None and scales.size:
        return int(np.count_nonzero(scales != 1.0))
    sizes = const_values.get(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    data = const_values.get(node.input[0])
    if sizes is not None and data is not None and sizes.size == data.ndim:
        return int(np.count_nonzero(np.asarray(sizes) != np.asarray(data.shape)))
    return None


def lint_onnx(path_or_model, target: str | TrtTarget | None = None) -> LintReport:
    """Check an ONNX model against what one TensorRT ONNX parser version imports.

    Args:
        path_or_model: path to a ``.onnx`` file or an ``onnx.ModelProto``.
        target: a name in ``trt_ops.TARGET_NAMES`` (jetpack5, jetpack6, jetpack7, trt10, trt11) or a TrtTarget;
            None means ``trt_ops.DEFAULT_TARGET``.

    Returns:
        LintReport with one Finding per (rule, node); falsy when there are errors.

    Raises:
        UsageError: unknown target. InvalidArtifactError: unreadable file.
    """
    import onnx

    from .trt_ops import DEFAULT_TARGET

    tgt = target if isinstance(target, TrtTarget) else get_target(target or DEFAULT_TARGET)
    model, label = _load(path_or_model)
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - lint what we have; shape-dependent rules just see fewer shapes
        pass
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    report = LintReport(tgt.name, tgt.label, label, opset)
    seen: set[tuple[str, str]] = set()

    def add(rule_id, node_name, op, detail=""):
        rule = get_rule(rule_id)
        if not rule.applies(tgt.trt_version) or (rule_id, node_name) in seen:
            return
        seen.add((rule_id, node_name))
        msg = rule.message + (f" ({detail})" if detail else "")
        report.findings.append(Finding(rule.id, rule.severity, node_name, op, msg, rule.fix, rule.source))

    if opset > tgt.max_opset:
        add("TRT006", "<model>", "opset_import", f"opset {opset} > {tgt.max_opset} for {tgt.label}")

    # Only the main graph's weights: a subgraph may also read outer weights, which is still constant, but the
    # rules below are about the main graph's shape math, where dynamo puts its axes.
    constants = _constant_names(model.graph)
    const_values = _constant_values(model.graph)
    consumers: dict[str, list] = {}
    for node, _ in _iter_nodes(model.graph):
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    for node, name in _iter_nodes(model.graph):
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            add("TRT010", name, op, f"domain {node.domain!r}")
            continue
        if op not in tgt.ops:
            if op == "Attention":
                add("TRT002", name, op)
            else:
                hint = " (INormalizationLayer arrived in 8.6; export with opset <= 16 to keep it decomposed)" \
                    if op == "LayerNormalization" and tgt.trt_version < (8, 6) else ""
                add("TRT008", name, op, f"{op} is not supported by {tgt.label}{hint}")
        if op == "Resize":
            if _attr(node, "antialias", 0):
                add("TRT001", name, op)
            mode = _attr(node, "mode", "nearest")
            coord = _attr(node, "coordinate_transformation_mode", "half_pixel")
            policy = _attr(node, "keep_aspect_ratio_policy", "stretch")
            if mode == "cubic" and (changed := _resized_dims(node, const_values)) is not None and changed > 2:
                add("TRT015", name, op, f"{changed} dimensions resized")
            if mode not in {"nearest", "linear", "cubic"} or coord not in _RESIZE_COORD_OK or policy != "stretch":
                add("TRT014", name, op, f"mode={mode}, coordinate_transformation_mode={coord}, "
                                        f"keep_aspect_ratio_policy={policy}")
        elif op in ("Squeeze", "Unsqueeze") and len(node.input) > 1 and node.input[1] \
                and node.input[1] not in constants:
            add("TRT016", name, op, f"axes {node.input[1]!r} is computed")
        elif op.startswith("Reduce") and len(node.input) > 1 and node.input[1] and node.input[1] not in constants:
            add("TRT017", name, op, f"axes {node.input[1]!r} is computed")
        elif op == "If" and node.input[0] not in constants:  # a constant condition is folded by the parser
            then_g, else_g = _attr(node, "then_branch"), _attr(node, "else_branch")
            for a, b in zip(then_g.output, else_g.output):
                sa, sb = _shape(a), _shape(b)
                if sa is None or sb is None:
                    continue
                if len(sa) != len(sb):
                    add("TRT004", name, op, f"output {a.name} rank {len(sa)} vs {b.name} rank {len(sb)}")
                elif _shapes_differ(sa, sb):
                    add("TRT003", name, op, f"then {a.name} {list(sa)} vs else {b.name} {list(sb)}")
            runtime = [o.name for o in (*then_g.output, *else_g.output)
                       if (s := _shape(o)) is None or not all(isinstance(d, int) and d > 0 for d in s)]
            if runtime and "TRT003" not in {f.rule_id for f in report.findings if f.node == name}:
                add("TRT018", name, op, f"run-time shape(s): {', '.join(runtime[:2])}")
        elif op == "Loop":
            body = _attr(node, "body")
            n_carried = len(node.input) - 2
            for k in range(max(n_carried, 0)):
                sin, sout = _shape(body.input[k + 2]), _shape(body.output[k + 1])
                if sin is None or sout is None:
                    continue
                if len(sin) != len(sout) or _shapes_differ(sin, sout):
                    add("TRT005", name, op, f"carried {body.input[k + 2].name} {list(sin)} -> "
                                            f"{body.output[k + 1].name} {list(sout)}")
        elif op == "GridSample":
            vi = {v.name: v for v in _iter_value_infos(model.graph)}
            if node.input[0] in vi and (s := _shape(vi[node.input[0]])) is not None and len(s) != 4:
                add("TRT013", name, op, f"input rank {len(s)}")
        elif op == "Cast" and _attr(node, "to") == onnx.TensorProto.DOUBLE:
            add("TRT007", name, op, "Cast to DOUBLE")
        elif op == "Constant":
            v = _attr(node, "value")
            if v is not None and getattr(v, "data_type", None) == onnx.TensorProto.DOUBLE:
                add("TRT007", name, op, "DOUBLE constant")
        if _is_decomposed_ln_root(node, consumers):
            add("TRT011", name, op)

    for init in _iter_initializers(model.graph):
        if init.data_type == onnx.TensorProto.DOUBLE:
            add("TRT007", init.name, "initializer")
    int64_seen = False
    for vi in _iter_value_infos(model.graph):
        et = vi.type.tensor_type.elem_type
        if et == onnx.TensorProto.DOUBLE:
            add("TRT007", vi.name, "tensor")
        int64_seen |= et == onnx.TensorProto.INT64
    if int64_seen or any(i.data_type == onnx.TensorProto.INT64 for i in _iter_initializers(model.graph)):
        add("TRT012", "<model>", "INT64")
    return report
