"""The rewrite driver: run the passes in order and prove, pass by pass, that outputs did not move.

``apply_rewrites`` loads the ONNX, and for each selected pass: runs ONNX Runtime (CPU) on the graph before and after
at the context's check shapes, compares every output (max abs / max rel), and raises GraphRewriteError naming the
pass when ``|after - before| > atol + rtol * |before|`` anywhere. The report lists what each pass changed, what it
flagged, node counts and the measured differences.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from resvit_export.errors import GraphRewriteError, InvalidArtifactError, UsageError
from resvit_export.profiles import ResolutionProfile

from .passes import PASS_NAMES, PASSES, PassResult

__all__ = ["RewriteContext", "PassReport", "RewriteReport", "apply_rewrites", "default_check_shapes"]

DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-3
DEFAULT_MAX_CHECK_SIDE = 512  # CPU cost of the proof grows ~quadratically in tokens; cap the "max" feed


def _snap(side: int, lo: int, hi: int, patch: int) -> int:
    """Largest patch multiple <= side within [lo, hi] (lo itself when none is)."""
    v = (min(side, hi) // patch) * patch
    return v if v >= lo else lo


def default_check_shapes(profiles, patch_size: int = 16, max_side: int | None = None) -> tuple[tuple[int, int, int], ...]:
    """(batch, H, W) feeds per profile: its minimum, its maximum (capped at ``max_side``) and an odd non-square.

    The odd shape uses odd token counts that differ between H and W, inside the profile and under the cap.
    """
    cap = max_side or DEFAULT_MAX_CHECK_SIDE
    shapes: list[tuple[int, int, int]] = []
    for prof in profiles:
        b = prof.batch.min
        (h0, w0), (h1, w1) = prof.min, prof.max
        shapes.append((b, h0, w0))
        shapes.append((b, _snap(min(h1, max(cap, h0)), h0, h1, patch_size), _snap(min(w1, max(cap, w0)), w0, w1,
                                                                                    patch_size)))
        gh = h0 // patch_size + 1 + (h0 // patch_size) % 2  # next odd grid above the minimum
        gw = w0 // patch_size + 3 + (w0 // patch_size) % 2  # a different odd grid
        oh = min(gh * patch_size, h1) if gh * patch_size <= max(cap, h0) else h0
        ow = min(gw * patch_size, w1) if gw * patch_size <= max(cap, w0) else w1 if w1 <= cap else w0
        shapes.append((min(prof.batch.max, max(b, 2)), oh, ow))
    return tuple(dict.fromkeys(shapes))  # de-duplicate, keep order


@dataclass
class RewriteContext:
    """Everything the passes and the proof need.

    Args:
        profiles: the resolution profile(s) the graph will be built for (one ResolutionProfile or a sequence).
        patch_size: model patch size (token grid = side // patch_size).
        input_names: image input(s) fed [B, C, H, W]; None = every graph input.
        check_shapes: (batch, H, W) feeds for the proof; None = ``default_check_shapes(profiles, patch_size)``.
        atol, rtol: proof tolerances per pass; None = 1e-4 / 1e-3 (fp32 graph on ORT CPU).
        target: lint target name the graph is headed for (e.g. "jetpack6"); passes adapt (no LN fusion for jetpack5).
        seed: random feed seed.
    """

    profiles: tuple[ResolutionProfile, ...] | ResolutionProfile
    patch_size: int = 16
    input_names: tuple[str, ...] | None = None
    check_shapes: tuple[tuple[int, int, int], ...] | None = None
    atol: float | None = None
    rtol: float | None = None
    target: str | None = None
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.profiles, ResolutionProfile):
            self.profiles = (self.profiles,)
        self.profiles = tuple(self.profiles)
        if not self.profiles:
            raise UsageError("RewriteContext needs at least one resolution profile (e.g. parse_profile('224-448'))")
        if self.target is not None:
            from .trt_ops import get_target

            self.target = get_target(self.target).name  # UsageError listing the valid names
        self.atol = DEFAULT_ATOL if self.atol is None else self.atol
        self.rtol = DEFAULT_RTOL if self.rtol is None else self.rtol
        if self.check_shapes is None:
            self.check_shapes = default_check_shapes(self.profiles, self.patch_size)


@dataclass
class PassReport:
    """One pass in the driver: skipped or not, node counts, edits/flags/notes, measured max abs/rel change."""

    name: str
    skipped: bool
    nodes_before: int
    nodes_after: int
    changes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    max_abs: float = 0.0
    max_rel: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class RewriteReport:
    """The whole rewrite: per-pass reports, the check shapes used, and the end-to-end difference."""

    onnx_in: str
    onnx_out: str
    check_shapes: list
    passes: list[PassReport] = field(default_factory=list)
    total_max_abs: float = 0.0  # final graph vs the input graph, over all check shapes
    total_max_rel: float = 0.0

    @property
    def flags(self) -> list[str]:
        return [f"{p.name}: {f}" for p in self.passes for f in p.flags]

    @property
    def nodes_before(self) -> int:
        return self.passes[0].nodes_before if self.passes else 0

    @property
    def nodes_after(self) -> int:
        return self.passes[-1].nodes_after if self.passes else 0

    def get(self, name: str) -> PassReport:
        return next(p for p in self.passes if p.name == name)

    def __str__(self) -> str:
        lines = [f"rewrite {self.onnx_in} -> {self.onnx_out}: {self.nodes_before} -> {self.nodes_after} nodes, "
                 f"proved at (B,H,W) {self.check_shapes}; end-to-end max abs {self.total_max_abs:.2e} "
                 f"rel {self.total_max_rel:.2e}"]
        for p in self.passes:
            state = "skipped" if p.skipped else (f"{len(p.changes)} change(s)" if p.changes else "no change")
            lines.append(f"  {p.name:<17} {p.nodes_before:>5} -> {p.nodes_after:<5} {state}; max abs {p.max_abs:.2e}"
                         f" rel {p.max_rel:.2e}")
            lines += [f"      - {c}" for c in p.changes] + [f"      ! {f}" for f in p.flags]
            lines += [f"      . {n}" for n in p.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"onnx_in": self.onnx_in, "onnx_out": self.onnx_out, "check_shapes": self.check_shapes,
                "nodes_before": self.nodes_before, "nodes_after": self.nodes_after, "flags": self.flags,
                "total_max_abs": self.total_max_abs, "total_max_rel": self.total_max_rel,
                "passes": [p.to_dict() for p in self.passes]}


def _feeds(model, ctx: RewriteContext) -> list[dict[str, np.ndarray]]:
    import onnx

    rng = np.random.default_rng(ctx.seed)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    names = set(ctx.input_names) if ctx.input_names else {i.name for i in inputs}
    unknown = names - {i.name for i in inputs}
    if unknown:
        raise UsageError(f"input name(s) {sorted(unknown)} not in the graph; its inputs are {[i.name for i in inputs]}")
    feeds = []
    for b, h, w in ctx.check_shapes:
        feed = {}
        for inp in inputs:
            if inp.name not in names:
                raise UsageError(f"graph input {inp.name!r} is not an image input; list the image inputs in "
                                 f"RewriteContext.input_names (others cannot be fed yet)")
            dims = inp.type.tensor_type.shape.dim
            if len(dims) != 4:
                raise UsageError(f"input {inp.name!r} has rank {len(dims)}; the proof feeds [B, C, H, W] images")
            c = dims[1].dim_value or 3
            dtype = onnx.helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
            feed[inp.name] = rng.standard_normal((b, c, h, w)).astype(dtype)
        feeds.append(feed)
    return feeds


def _run(model, feeds) -> list[list[np.ndarray]]:
    from resvit_export._optional import require

    ort = require("onnxruntime")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # run the graph as written
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return [sess.run(None, feed) for feed in feeds]


def _compare(before, after, ctx, pass_name, shapes) -> tuple[float, float]:
    max_abs = max_rel = 0.0
    for shape, outs_a, outs_b in zip(shapes, before, after):
        for i, (a, b) in enumerate(zip(outs_a, outs_b)):
            if a.shape != b.shape:
                raise GraphRewriteError(f"pass {pass_name!r} changed output #{i} shape at (B,H,W)={shape}: "
                                        f"{a.shape} -> {b.shape}; rerun with only=[...] without it to bypass")
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            diff = np.abs(b64 - a64)
            abs_err = float(diff.max()) if diff.size else 0.0
            rel_err = float((diff / np.maximum(np.abs(a64), 1e-12)).max()) if diff.size else 0.0
            max_abs, max_rel = max(max_abs, abs_err), max(max_rel, rel_err)
            if np.any(diff > ctx.atol + ctx.rtol * np.abs(a64)) or not np.all(np.isfinite(b64) == np.isfinite(a64)):
                raise GraphRewriteError(
                    f"pass {pass_name!r} changed output #{i} at (B,H,W)={shape} beyond tolerance: max abs "
                    f"{abs_err:.3e}, max rel {rel_err:.3e} (atol {ctx.atol}, rtol {ctx.rtol}); skip it with "
                    f"--only/without this pass and report the graph")
    return max_abs, max_rel


def apply_rewrites(onnx_in, onnx_out, context: RewriteContext, only=None, skip_all: bool = False) -> RewriteReport:
    """Apply the graph passes in order, proving each output-preserving with ONNX Runtime; write ``onnx_out``.

    Args:
        onnx_in: path to the exported ONNX (or an ``onnx.ModelProto``).
        onnx_out: where to write the rewritten ONNX (atomically); None = do not write.
        context: profiles, patch size, check shapes, tolerances, target.
        only: pass names to run (others are reported as skipped); None = all of ``PASS_NAMES``.
        skip_all: ``--no-rewrite``: run nothing, copy the graph through unchanged.

    Returns:
        RewriteReport with per-pass changes, flags, node counts and measured max abs/rel differences.

    Raises:
        GraphRewriteError: a pass failed or moved outputs beyond tolerance (the message names the pass).
        UsageError: unknown pass name or unfeedable input. InvalidArtifactError: unreadable ONNX.
    """
    from resvit_export._optional import require

    onnx = require("onnx")
    gs = require("onnx_graphsurgeon")
    selected = set(PASS_NAMES if only is None else ([only] if isinstance(only, str) else only))
    unknown = selected - set(PASS_NAMES)
    if unknown:
        raise UsageError(f"unknown rewrite pass(es) {sorted(unknown)}; choose from {', '.join(PASS_NAMES)}")
    if isinstance(onnx_in, onnx.ModelProto):
        model, in_label = onnx_in, "<model>"
    else:
        in_label = os.fspath(onnx_in)
        try:
            model = onnx.load(in_label)
        except Exception as err:  # noqa: BLE001
            raise InvalidArtifactError(f"cannot read ONNX model {in_label} ({err})") from err
    report = RewriteReport(in_label, "" if onnx_out is None else os.fspath(onnx_out),
                           [list(s) for s in context.check_shapes])
    feeds = _feeds(model, context)
    current = model
    ref = None
    for name, fn in PASSES:
        n_before = len(current.graph.node)
        if skip_all or name not in selected:
            report.passes.append(PassReport(name, True, n_before, n_before))
            continue
        if ref is None:
            ref = first = _run(current, feeds)
        try:
            graph = gs.import_onnx(onnx.shape_inference.infer_shapes(current, strict_mode=False))
            result: PassResult = fn(graph, context)
            new = gs.export_onnx(graph)
            new.ir_version = current.ir_version
            after = _run(new, feeds)
        except GraphRewriteError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure inside a pass is that pass's failure
            raise GraphRewriteError(f"pass {name!r} failed: {type(err).__name__}: {err}; skip it with only=[...] "
                                    f"(CLI --only) and report the graph") from err
        max_abs, max_rel = _compare(ref, after, context, name, context.check_shapes)
        report.passes.append(PassReport(name, False, n_before, len(new.graph.node), result.changes, result.flags,
                                        max_abs, max_rel, result.notes))
        current, ref = new, after
    if ref is not None:  # drift can add up across passes: check the end result against the input too
        report.total_max_abs, report.total_max_rel = _compare(first, ref, context, "all passes combined",
                                                              context.check_shapes)
    if onnx_out is not None:
        from resvit_export.io import atomic_path

        with atomic_path(onnx_out) as tmp:
            onnx.save(current, str(tmp))
    return report
