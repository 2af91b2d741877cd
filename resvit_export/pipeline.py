"""``build``: export -> rewrite -> lint -> validate -> precision -> plan -> engine -> manifest.

Every step is recorded (status, seconds, artifacts). ``status.json`` is written last, also on failure, so a
directory whose status.json says PASSED is complete; anything else is not an artifact to ship.
On a machine without TensorRT the engine step is DEFERRED (not failed): the plan, trtexec lines and bundle
carry everything the target needs to build the engine itself.
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .errors import ParityError, LintError, ResvitExportError
from .io import prepare_output_dir, write_json_atomic
from .profiles import BatchRange, ResolutionProfile

__all__ = ["DEFAULT_MODEL", "DEFAULT_TARGET", "BuildOptions", "StepRecord", "BuildResult", "build",
           "deployment_overrides"]

# The flagship "any resolution" model: its backbone cost stays flat over 224-1792 (ATM merges to 14x14).
DEFAULT_MODEL = "vitar_s"
# JetPack 6 (TensorRT 10.3) is what most Orin boards run today.
DEFAULT_TARGET = "jetpack6"


def deployment_overrides(model_name: str, profiles: list[ResolutionProfile], overrides: dict[str, Any]) -> dict:
    """``overrides`` plus ``max_side`` lowered to the largest side any profile allows, unless the user set it.

    For ViTAR the number of ATM stages follows ``max_side``; stages beyond what the profile needs are exact
    identities with shared weights, so the smaller model is bit-identical over the profile and ~15% cheaper
    (vitar_s at 224 px: 13.6 -> 11.6 GFLOPs). For the other families it only tightens the size check.
    """
    import dataclasses as dc

    from .models import get_entry

    out = dict(overrides)
    config = get_entry(model_name).config
    if "max_side" not in out and "max_side" in {f.name for f in dc.fields(config)} and profiles:
        # only ever lowered: a profile beyond the model's own maximum must still fail its size check
        out["max_side"] = min(config.max_side, max(max(p.max) for p in profiles))
    return out


@dataclass
class BuildOptions:
    profiles: list[ResolutionProfile]
    out_dir: Path
    model: str = DEFAULT_MODEL
    batch: BatchRange = field(default_factory=BatchRange)
    precision: str = "fp32"
    keep_fp32: list[str] | None = None
    opset: int = 18
    weights: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    targets: list[str] = field(default_factory=lambda: [DEFAULT_TARGET])
    rewrite: bool = True
    only_passes: list[str] | None = None
    tolerances: Any = None  # resvit_export.validate.parity.Tolerances or None for the precision's defaults
    extra_resolutions: list[tuple[int, int]] = field(default_factory=list)
    device: str | None = None
    memory_budget: str | None = None
    calib_data: Path | None = None
    calib_synthetic: int | None = None
    calib_method: str = "entropy"
    engine: str = "auto"  # auto: build when TensorRT + GPU exist, else defer; skip: never
    force: bool = False


@dataclass
class StepRecord:
    name: str
    status: str  # PASSED | FAILED | DEFERRED | SKIPPED
    seconds: float = 0.0
    detail: str = ""
    artifacts: list[str] = field(default_factory=list)


@dataclass
class BuildResult:
    out_dir: Path
    status: str
    steps: list[StepRecord]
    error: str | None = None
    exit_code: int = 0

    @property
    def passed(self) -> bool:
        return self.status == "PASSED"


class _Recorder:
    """Runs steps, records them, and reports progress through an optional callback."""

    def __init__(self, out_dir: Path, notify: Callable[[str, StepRecord | None], None] | None):
        self.out_dir = out_dir
        self.steps: list[StepRecord] = []
        self.notify = notify or (lambda name, rec: None)

    def run(self, name: str, fn: Callable[[], tuple[str, str, list[str]] | None]):
        self.notify(name, None)
        start = time.monotonic()
        try:
            out = fn() or ("PASSED", "", [])
        except BaseException as err:  # recorded, then re-raised for the caller's exit code
            rec = StepRecord(name, "FAILED", time.monotonic() - start, _one_line(err))
            self.steps.append(rec)
            self.notify(name, rec)
            raise
        status, detail, artifacts = out
        rec = StepRecord(name, status, time.monotonic() - start, detail, [str(a) for a in artifacts])
        self.steps.append(rec)
        self.notify(name, rec)
        return rec


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def _rel(out_dir: Path, path: Path | str) -> str:
    path = Path(path)
    try:
        return str(path.relative_to(out_dir))
    except ValueError:
        return str(path)


def build(opts: BuildOptions, notify: Callable[[str, StepRecord | None], None] | None = None) -> BuildResult:
    """Run the whole pipeline into ``opts.out_dir``. Raises the first step's ResvitExportError after
    writing a FAILED status.json; returns a BuildResult (status PASSED) otherwise."""
    from .models import create_model, load_weights

    out = prepare_output_dir(opts.out_dir, force=opts.force)
    rec = _Recorder(out, notify)
    state: dict[str, Any] = {}
    started = time.time()
    try:
        def make_model():
            overrides = deployment_overrides(opts.model, opts.profiles, opts.overrides)
            model = create_model(opts.model, seed=opts.seed, **overrides)
            state["overrides"] = overrides
            if opts.weights is not None:
                load_weights(model, opts.weights)
            for prof in opts.profiles:
                prof.check_against(model.size_rule)
            state["model"] = model
            weights = f"weights {opts.weights}" if opts.weights else f"random init, seed {opts.seed}"
            return "PASSED", f"{opts.model} ({weights})", []

        rec.run("model", make_model)
        rec.run("export", lambda: _step_export(opts, out, state))
        rec.run("rewrite", lambda: _step_rewrite(opts, out, state))
        rec.run("lint", lambda: _step_lint(opts, out, state))
        rec.run("validate", lambda: _step_validate(opts, out, state, "fp32", state["deploy_onnx"]))
        if opts.precision in ("fp16", "int8"):
            rec.run(f"precision-{opts.precision}", lambda: _step_precision(opts, out, state))
            rec.run(f"validate-{opts.precision}",
                    lambda: _step_validate(opts, out, state, opts.precision, state["precision_onnx"]))
        rec.run("plan", lambda: _step_plan(opts, out, state))
        rec.run("engine", lambda: _step_engine(opts, out, state))
        rec.run("manifest", lambda: _step_manifest(opts, out, state, rec.steps))
    except BaseException as err:
        code = err.exit_code if isinstance(err, ResvitExportError) else (130 if isinstance(err, KeyboardInterrupt) else 1)
        _write_status(out, opts, rec.steps, "FAILED", started, error=_one_line(err), exit_code=code)
        raise
    _write_status(out, opts, rec.steps, "PASSED", started)
    return BuildResult(out, "PASSED", rec.steps)


def _write_status(out: Path, opts: BuildOptions, steps, status, started, error=None, exit_code=0):
    write_json_atomic(out / "status.json", {
        "command": "build",
        "status": status,
        "exit_code": exit_code,
        "error": error,
        "model": opts.model,
        "profiles": [str(p) for p in opts.profiles],
        "precision": opts.precision,
        "targets": opts.targets,
        "steps": [dataclasses.asdict(s) for s in steps],
        "engine": next((s.status for s in steps if s.name == "engine"), None),
        "seconds": round(time.time() - started, 2),
        "resvit_export": __version__,
        "host": platform.node(),
    })


# --- steps (each returns (status, detail, artifacts)) -------------------------------------------------


def _union_profile(profiles: list[ResolutionProfile], batch: BatchRange) -> ResolutionProfile:
    if len(profiles) == 1:
        p = profiles[0]
        return p if p.batch != BatchRange() or batch == BatchRange() else dataclasses.replace(p, batch=batch)
    lo = (min(p.min[0] for p in profiles), min(p.min[1] for p in profiles))
    hi = (max(p.max[0] for p in profiles), max(p.max[1] for p in profiles))
    return ResolutionProfile(lo, hi, None, batch)


def _step_export(opts, out, state):
    from .export.onnx_export import export_onnx
    from .export.record import write_export_record

    profile = _union_profile(opts.profiles, opts.batch)
    result = export_onnx(state["model"], out / "model.onnx", profile, opset=opts.opset)
    write_export_record(out, result, model_name=opts.model, overrides=state["overrides"], seed=opts.seed,
                        weights=opts.weights, profiles=opts.profiles, opset=opts.opset)
    state["export"] = result
    state["deploy_onnx"] = out / "model.onnx"
    dims = ", ".join(f"{k} {v[0]}..{'inf' if v[1] is None else v[1]}" for k, v in result.range_constraints.items())
    return "PASSED", f"{result.seconds:.1f}s; dynamic dims kept: {dims}", ["model.onnx", "export.json"]


def _step_rewrite(opts, out, state):
    from .graph.rewrite import RewriteContext, apply_rewrites

    if not opts.rewrite:
        shutil.copyfile(out / "model.onnx", out / "model.rewritten.onnx")
        state["deploy_onnx"] = out / "model.rewritten.onnx"
        return "SKIPPED", "--no-rewrite: graph copied unchanged", ["model.rewritten.onnx"]
    ctx = RewriteContext(opts.profiles, patch_size=state["model"].size_rule.patch_size, target=opts.targets[0],
                         seed=opts.seed)
    report = apply_rewrites(out / "model.onnx", out / "model.rewritten.onnx", ctx, only=opts.only_passes)
    write_json_atomic(out / "rewrite.json", report.to_dict())
    state["deploy_onnx"] = out / "model.rewritten.onnx"
    changed = [p.name for p in report.passes if not p.skipped and p.changes]
    flags = f"; {len(report.flags)} flag(s): {report.flags[0]}" if report.flags else ""
    detail = (f"{report.nodes_before}->{report.nodes_after} nodes, changed by {', '.join(changed) or 'no pass'}, "
              f"outputs proven unchanged at {len(ctx.check_shapes)} shapes{flags}")
    return "PASSED", detail, ["model.rewritten.onnx", "rewrite.json"]


def _step_lint(opts, out, state):
    from .graph.lint import lint_onnx

    reports = {t: lint_onnx(state["deploy_onnx"], t) for t in opts.targets}
    write_json_atomic(out / "lint.json", {t: r.to_dict() for t, r in reports.items()})
    errors = [(t, f) for t, r in reports.items() for f in r.errors]
    warnings = sum(len(r.warnings) for r in reports.values())
    if errors:
        t, f = errors[0]
        raise LintError(f"{len(errors)} lint error(s) for {', '.join(opts.targets)}; first ({t}): {f.rule_id} at "
                        f"node {f.node} ({f.op}): {f.message}. Fix: {f.fix} (all findings: {out / 'lint.json'})")
    return "PASSED", f"targets {', '.join(opts.targets)}: 0 errors, {warnings} warnings", ["lint.json"]


def _step_validate(opts, out, state, precision, onnx_path):
    from .validate.parity import default_tolerances, validate_onnx

    tolerances = default_tolerances(precision).with_overrides(**opts.tolerances) if opts.tolerances else None
    report = validate_onnx(state["model"], onnx_path, opts.profiles, precision=precision, tolerances=tolerances,
                           seed=opts.seed, extra_resolutions=opts.extra_resolutions,
                           out_dir=out, isolated=precision != "fp32")
    suffix = "" if precision == "fp32" else f".{precision}"
    state.setdefault("parity", {})[precision] = report.summary_dict()
    files = [f"parity{suffix}.{ext}" for ext in ("json", "md", "png", "junit.xml")]
    if not report.passed:
        raise ParityError(f"{precision} parity FAILED: {report.failure_line()} (see {out / files[1]})")
    ref = report.reference_set  # PyTorch's outputs for the device's engine check (validate/reference.py)
    return ("PASSED", f"{report.summary_line()}; reference set {ref['bytes'] / 1e6:.2f} MB",
            files + list(ref["files"]))


def _step_precision(opts, out, state):
    src = state["deploy_onnx"]
    if opts.precision == "fp16":
        from .precision.fp16 import make_fp16_onnx

        result = make_fp16_onnx(src, out / "model.fp16.onnx", keep_fp32=opts.keep_fp32)
    else:
        from .precision.calibration import calibration_set_for_build
        from .precision.int8 import make_int8_onnx

        calib = calibration_set_for_build(opts, state["model"])
        result = make_int8_onnx(src, out / "model.int8.onnx", calib, method=opts.calib_method,
                                keep_fp32=opts.keep_fp32)
    state["precision_onnx"] = result.path
    state["precision_result"] = result
    return "PASSED", f"{len(result.kept_fp32_nodes)} nodes kept in FP32", [_rel(out, result.path)]


def _step_plan(opts, out, state):
    from .trt.planner import plan_profiles
    from .trt.trtexec import write_trtexec_script

    plan = plan_profiles(state["model"], opts.profiles, opts.batch, opts.precision, device=opts.device,
                         memory_budget=opts.memory_budget)
    write_json_atomic(out / "plan.json", plan.to_dict())
    onnx_name = _rel(out, state.get("precision_onnx", state["deploy_onnx"]))
    write_trtexec_script(plan, onnx_name, out / "trtexec.sh")
    state["plan"] = plan
    warn = f"; {len(plan.warnings)} warning(s): {plan.warnings[0]}" if plan.warnings else ""
    return "PASSED", f"{len(plan.profiles)} optimization profile(s){warn}", ["plan.json", "trtexec.sh"]


def _step_engine(opts, out, state):
    from ._optional import is_available

    if opts.engine == "skip":
        return "SKIPPED", "--engine skip", []
    if not is_available("tensorrt"):
        return ("DEFERRED",
                "TensorRT is not installed here: build on the target with `bash trtexec.sh` or "
                "`resvit-export bundle` + the bundle's build_engine.sh (see README 'Jetson')", [])
    from .trt.builder import build_engines

    engines = build_engines(state.get("precision_onnx", state["deploy_onnx"]), state["plan"], out,
                            timing_cache=out / "timing.cache")
    state["engines"] = engines
    return "PASSED", f"{len(engines)} engine(s) built", [_rel(out, e) for e in engines]


def _step_manifest(opts, out, state, steps):
    from .trt.manifest import write_build_manifest

    path = write_build_manifest(out, state, opts, steps)
    return "PASSED", "", [_rel(out, path)]
