"""``build``: export -> rewrite -> lint -> validate -> precision -> plan -> engine -> engine-parity -> manifest.

1. :meth:`BuildOptions.validate` checks every option and builds the reference model (config invariants,
   profiles against its size rule, weights, calibration source, dependencies) - before any file exists.
2. :func:`~resvit_export.staging.staged_output` locks ``out_dir`` and gives a staging directory next to it.
3. The steps run in order, each a ``_step_x(opts, layout, state)`` function recorded by :class:`_Recorder`
   (status, seconds, artifacts); they hand results on through the typed :class:`BuildState`.
4. status.json is written last (:func:`~resvit_export.status.write_status`). A PASSED build is swapped in as
   ``out_dir``; a FAILED one keeps its artifacts for diagnosis (see ``StagedOutput.publish_failed``); an
   interrupted one leaves ``out_dir`` as it was.

On a machine without TensorRT the engine step is DEFERRED (not failed): the plan, trtexec lines and bundle
carry everything the target needs to build the engine itself. The engine-parity step is then DEFERRED too
(never PASSED without running): the bundle's reference set lets the device check its own engine.

``--target cpu`` (:data:`CPU_TARGET`) adds the CPU deployment step after validation: ``cpu/`` with the graph ONNX
Runtime runs fastest on this machine and an INT8 graph, both measured and proven (:mod:`resvit_export.cpu`). Given
alone, no TensorRT step runs (lint, plan and engine are SKIPPED). When every target runs an ``If`` with run-time
branch shapes (the CPU, TensorRT >= 10.11), ViTAR is exported with its idle ATM stages gated off.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import LintError, ParityError, UsageError
from .graph.trt_ops import DEFAULT_TARGET, TARGET_NAMES
from .io import check_output_dir, copy_atomic, write_json_atomic
from .layout import PRECISIONS, BuildLayout
from .preflight import (PreparedModel, ToleranceOverrides, check_calibration_source, check_resolutions,
                        deployment_overrides, prepare_model, require_modules)
from .profiles import BatchRange, ResolutionProfile

__all__ = ["DEFAULT_MODEL", "DEFAULT_TARGET", "CPU_TARGET", "BuildOptions", "CheckedBuild", "BuildState",
           "StepRecord", "BuildResult", "build", "deployment_overrides"]

# The flagship "any resolution" model: its backbone cost stays flat over 224-1792 (ATM merges to 14x14).
DEFAULT_MODEL = "vitar_s"
ENGINE_MODES = ("auto", "skip")  # auto: build when TensorRT + GPU exist, else defer; skip: never
CPU_TARGET = "cpu"  # ONNX Runtime on the build machine's CPU (resvit_export.cpu), not a TensorRT parser


@dataclass(frozen=True)
class BuildOptions:
    """What the user asked for. :meth:`validate` checks all of it before :func:`build` touches a file."""

    profiles: list[ResolutionProfile]
    out_dir: Path
    model: Any = DEFAULT_MODEL  # registry name, "pkg.module:factory", or an nn.Module (models/external.py)
    batch: BatchRange | None = None  # folded into each plain-range profile by validate(); None: keep theirs
    precision: str = "fp32"
    keep_fp32: list[str] | None = None
    opset: int = 18
    weights: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    targets: list[str] = field(default_factory=lambda: [DEFAULT_TARGET])
    rewrite: bool = True
    only_passes: list[str] | None = None
    tolerances: ToleranceOverrides = field(default_factory=ToleranceOverrides)
    extra_resolutions: list[tuple[int, int]] = field(default_factory=list)
    device: str | None = None
    memory_budget: int | str | None = None  # bytes, or text such as "6G"
    calib_data: Path | None = None
    calib_synthetic: int | None = None
    calib_method: str = "entropy"
    engine: str = "auto"
    force: bool = False

    @property
    def trt_targets(self) -> list[str]:
        """The TensorRT parsers asked for (lint, rewrite, plan and engine are for these)."""
        return [t for t in self.targets if t != CPU_TARGET]

    @property
    def cpu(self) -> bool:
        return CPU_TARGET in self.targets

    def validate(self) -> "CheckedBuild":
        """Check and resolve every option; build the reference model. Creates no file.

        Raises UsageError/ConfigError/InputSizeError (exit 2), CheckpointError (6), MissingDependencyError (7)
        or OutputDirError (9) - each before any work.
        """
        from .graph.passes import PASS_NAMES
        from .graph.rules import accepts_runtime_if
        from .graph.trt_ops import get_target
        from .models import fit_to_profiles
        from .trt.devices import get_device, parse_memory_size

        if not self.profiles:
            raise UsageError("give at least one --profile (e.g. 224-1792)")
        if self.precision not in PRECISIONS:
            raise UsageError(f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}")
        if self.engine not in ENGINE_MODES:
            raise UsageError(f"unknown engine mode {self.engine!r}; use one of {', '.join(ENGINE_MODES)}")
        targets = [str(t).lower() for t in self.targets] or [DEFAULT_TARGET]
        unknown = [t for t in targets if t not in TARGET_NAMES and t != CPU_TARGET]
        if unknown:
            raise UsageError(f"unknown --target {unknown[0]!r}; choose from {', '.join(TARGET_NAMES + (CPU_TARGET,))}")
        if targets == [CPU_TARGET]:  # options that only shape a TensorRT graph, plan or engine
            if self.precision != "fp32":
                raise UsageError(f"--precision {self.precision} makes a TensorRT graph; --target cpu alone writes "
                                 "its own fp32 and INT8 CPU graphs (cpu/): drop --precision or add a TensorRT --target")
            if self.device is not None or self.memory_budget is not None:
                raise UsageError("--device/--memory-budget size TensorRT engines; --target cpu alone builds none: "
                                 "drop them or add a TensorRT --target")
        bad_passes = [p for p in self.only_passes or () if p not in PASS_NAMES]
        if bad_passes:
            raise UsageError(f"unknown rewrite pass {bad_passes[0]!r} for --only; choose from {', '.join(PASS_NAMES)}")
        device = get_device(self.device).name if self.device is not None else None
        budget = parse_memory_size(self.memory_budget) if self.memory_budget is not None else None
        check_calibration_source(self.precision, self.calib_data, self.calib_synthetic)
        for precision in {"fp32", self.precision}:
            self.tolerances.resolve(precision)  # range errors now, not in the validate step
        profiles = [p if self.batch is None or p.input_name else dataclasses.replace(p, batch=self.batch)
                    for p in self.profiles]
        modules = ["onnx", "onnxscript", "onnxruntime", "polygraphy", "matplotlib"]
        if self.rewrite:
            modules.append("onnx_graphsurgeon")
        require_modules(modules)
        check_output_dir(self.out_dir, self.force)
        overrides = dict(self.overrides)
        if all(t == CPU_TARGET or accepts_runtime_if(get_target(t).trt_version) for t in targets):
            overrides = fit_to_profiles(self.model, profiles, overrides, runtime_if=True)  # ViTAR: atm_gate
        prepared = prepare_model(self.model, overrides, seed=self.seed, weights=self.weights, profiles=profiles)
        extra = check_resolutions(self.extra_resolutions, profiles, prepared.size_rule)
        opts = dataclasses.replace(self, model=prepared.name, profiles=profiles, batch=None, targets=targets,
                                   device=device, memory_budget=budget, extra_resolutions=extra)
        return CheckedBuild(opts, prepared)


@dataclass(frozen=True)
class CheckedBuild:
    """Options that passed :meth:`BuildOptions.validate` (batch folded into the profiles, device and budget
    resolved) and the reference model they describe."""

    opts: BuildOptions
    model: PreparedModel


@dataclass
class BuildState:
    """What the steps hand on to later steps (each field is set by the step named in its comment)."""

    model: PreparedModel
    deploy_onnx: Path | None = None  # rewrite: the FP32 graph that is deployed
    precision_onnx: Path | None = None  # precision: model.fp16.onnx / model.int8.onnx
    precision_result: Any = None  # precision: resvit_export.precision.fp16.PrecisionResult
    parity: dict[str, dict] = field(default_factory=dict)  # validate*: precision -> summary
    reference_ahead: Any = None  # build start: validate/reference_runs.ReferenceAhead (closed when the build ends)
    reference: Any = None  # validate: the ReferenceRuns every matrix of this build compares against
    plan: Any = None  # plan: resvit_export.trt.planner.EnginePlan
    engines: list[Path] = field(default_factory=list)  # engine: built plan files

    @property
    def shipped_onnx(self) -> Path:
        """The graph the engine is built from: the precision graph when there is one."""
        return self.precision_onnx or self.deploy_onnx


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

    def __init__(self, notify: Callable[[str, StepRecord | None], None] | None):
        self.steps: list[StepRecord] = []
        self.notify = notify or (lambda name, rec: None)

    def run(self, name: str, fn: Callable[[], tuple[str, str, list[str]] | None]):
        from .errors import one_line

        self.notify(name, None)
        start = time.monotonic()
        try:
            out = fn() or ("PASSED", "", [])
        except BaseException as err:  # recorded, then re-raised for the caller's exit code
            rec = StepRecord(name, "FAILED", time.monotonic() - start, one_line(err))
            self.steps.append(rec)
            self.notify(name, rec)
            raise
        status, detail, artifacts = out
        rec = StepRecord(name, status, time.monotonic() - start, detail, [str(a) for a in artifacts])
        self.steps.append(rec)
        self.notify(name, rec)
        return rec


def build(opts: BuildOptions, notify: Callable[[str, StepRecord | None], None] | None = None) -> BuildResult:
    """Validate ``opts``, then run the whole pipeline into ``opts.out_dir`` (staged; see the module docstring).

    Returns a BuildResult (status PASSED). A failing step's error is re-raised after its FAILED status.json is
    written; the error then carries ``status_path``, where that status.json ended up.
    """
    from .staging import staged_output
    from .status import write_status

    started = time.monotonic()
    checked = opts.validate()
    opts = checked.opts
    with staged_output(opts.out_dir, force=opts.force) as stage:
        layout = BuildLayout(stage.path)
        state = BuildState(model=checked.model)
        rec = _Recorder(notify)
        write_status(stage.path, "build", "RUNNING", started=started, details=_details(opts, state, rec.steps))
        state.reference_ahead = _start_reference_ahead(opts, state)
        try:
            rec.run("export", lambda: _step_export(opts, layout, state))
            rec.run("rewrite", lambda: _step_rewrite(opts, layout, state))
            rec.run("lint", lambda: _step_lint(opts, layout, state))
            rec.run("validate", lambda: _step_validate(opts, layout, state, "fp32"))
            if opts.precision in ("fp16", "int8"):
                rec.run(f"precision-{opts.precision}", lambda: _step_precision(opts, layout, state))
                rec.run(f"validate-{opts.precision}", lambda: _step_validate(opts, layout, state, opts.precision))
            if opts.cpu:
                rec.run("cpu", lambda: _step_cpu(opts, layout, state))
            rec.run("plan", lambda: _step_plan(opts, layout, state))
            rec.run("engine", lambda: _step_engine(opts, layout, state))
            rec.run("engine-parity", lambda: _step_engine_parity(opts, layout, state))
            rec.run("manifest", lambda: _step_manifest(opts, layout, state, rec.steps))
        except Exception as err:  # an interrupt (KeyboardInterrupt, SIGKILL) publishes nothing: see staging
            err.status_path = stage.fail("build", started, err, _details(opts, state, rec.steps))
            raise
        finally:
            if state.reference_ahead is not None:  # its child, if still running, and the inputs it shared
                state.reference_ahead.close()
        write_status(stage.path, "build", "PASSED", started=started, details=_details(opts, state, rec.steps))
        out = stage.publish()
    return BuildResult(out, "PASSED", rec.steps)


def _details(opts: BuildOptions, state: BuildState, steps: list[StepRecord]) -> dict:
    return {
        "model": opts.model,
        "overrides": state.model.overrides,
        "seed": opts.seed,
        "weights": str(opts.weights) if opts.weights else None,
        "profiles": [str(p) for p in opts.profiles],
        "precision": opts.precision,
        "targets": list(opts.targets),
        "steps": [dataclasses.asdict(s) for s in steps],
        "engine": next((s.status for s in steps if s.name == "engine"), None),
        "engine_parity": next((s.status for s in steps if s.name == "engine-parity"), None),
    }


_NO_TRT = "no TensorRT target (--target cpu only)"
_NO_INT8 = "no INT8 CPU graph: the weights are the random init (pass --weights to make and prove one)"


# --- steps (each returns (status, detail, artifacts)) -------------------------------------------------


def _step_export(opts: BuildOptions, layout: BuildLayout, state: BuildState):
    from .export.workflow import export_prepared

    result = export_prepared(state.model, layout, opts.profiles, opset=opts.opset, seed=opts.seed,
                             weights=opts.weights)
    state.deploy_onnx = layout.onnx
    dims = ", ".join(f"{k} {v[0]}..{'inf' if v[1] is None else v[1]}" for k, v in result.range_constraints.items())
    return "PASSED", f"{result.seconds:.1f}s; dynamic dims kept: {dims}", [layout.rel(layout.onnx),
                                                                          layout.rel(layout.export_record)]


def _step_rewrite(opts: BuildOptions, layout: BuildLayout, state: BuildState):
    from .graph.rewrite import RewriteContext, apply_rewrites

    if not opts.rewrite:
        copy_atomic(layout.onnx, layout.rewritten_onnx)
        state.deploy_onnx = layout.rewritten_onnx
        return "SKIPPED", "--no-rewrite: graph copied unchanged", [layout.rel(layout.rewritten_onnx)]
    trt = opts.trt_targets
    ctx = RewriteContext(opts.profiles, patch_size=state.model.size_rule.patch_size, target=trt[0] if trt else None,
                         seed=opts.seed)
    report = apply_rewrites(layout.onnx, layout.rewritten_onnx, ctx, only=opts.only_passes)
    write_json_atomic(layout.rewrite_report, report.to_dict())
    state.deploy_onnx = layout.rewritten_onnx
    changed = [p.name for p in report.passes if not p.skipped and p.changes]
    flags = f"; {len(report.flags)} flag(s): {report.flags[0]}" if report.flags else ""
    detail = (f"{report.nodes_before}->{report.nodes_after} nodes, changed by {', '.join(changed) or 'no pass'}, "
              f"outputs proven unchanged at {len(ctx.check_shapes)} shapes{flags}")
    return "PASSED", detail, [layout.rel(layout.rewritten_onnx), layout.rel(layout.rewrite_report)]


def _step_lint(opts: BuildOptions, layout: BuildLayout, state: BuildState):
    from .graph.lint import lint_onnx

    if not opts.trt_targets:
        return "SKIPPED", _NO_TRT, []
    reports = {t: lint_onnx(state.deploy_onnx, t) for t in opts.trt_targets}
    write_json_atomic(layout.lint_report, {t: r.to_dict() for t, r in reports.items()})
    errors = [(t, f) for t, r in reports.items() for f in r.errors]
    warnings = sum(len(r.warnings) for r in reports.values())
    if errors:
        t, f = errors[0]
        raise LintError(f"{len(errors)} lint error(s) for {', '.join(opts.trt_targets)}; first ({t}): {f.rule_id} at "
                        f"node {f.node} ({f.op}): {f.message}. Fix: {f.fix} (all findings: lint.json)")
    return ("PASSED", f"targets {', '.join(opts.trt_targets)}: 0 errors, {warnings} warnings",
            [layout.rel(layout.lint_report)])


def _start_reference_ahead(opts: BuildOptions, state: BuildState):
    """Start computing PyTorch's side of the parity matrix on the core export leaves idle
    (validate/reference_runs.py); None where that cannot help (CUDA reference, one core, no fork)."""
    from .validate.parity import pick_reference_device
    from .validate.reference_runs import ReferenceAhead, plan_jobs
    from .validate.sides import default_threads

    if pick_reference_device() != "cpu":
        return None
    jobs = plan_jobs(opts.profiles, state.model.model.size_rule, opts.extra_resolutions, seed=opts.seed)
    return ReferenceAhead.start(state.model.model, jobs, threads=default_threads())


def _collect_reference(state: BuildState) -> tuple[Any, str]:
    """The reference runs for a validate step, and a note for its detail line."""
    ahead = state.reference_ahead
    if state.reference is not None or ahead is None:
        return state.reference, ""
    runs = ahead.result()
    if runs is None:
        return None, f"; PyTorch ran here: the reference computed ahead is missing ({ahead.failure})"
    return runs, f"; PyTorch computed ahead during export ({len(ahead.jobs)} forwards, {runs.busy_s:.1f}s)"


def _step_validate(opts: BuildOptions, layout: BuildLayout, state: BuildState, precision: str):
    from .validate.parity import validate_onnx

    onnx_path = state.deploy_onnx if precision == "fp32" else state.precision_onnx
    tolerances = opts.tolerances.resolve(precision) if opts.tolerances.to_dict() else None
    reference, note = _collect_reference(state)
    report = validate_onnx(state.model.model, onnx_path, opts.profiles, precision=precision, tolerances=tolerances,
                           seed=opts.seed, extra_resolutions=opts.extra_resolutions,
                           out_dir=layout.root, isolated=precision != "fp32", reference=reference)
    state.reference = report.reference_runs  # the next matrix of this build (fp16/int8, CPU graphs) reuses it
    state.parity[precision] = report.summary_dict()
    files = [layout.rel(layout.parity(precision, ext)) for ext in ("json", "md", "png", "junit.xml")]
    if not report.passed:
        raise ParityError(f"{precision} parity FAILED: {report.failure_line()} (see {files[1]})")
    ref = report.reference_set  # PyTorch's outputs for the device's engine check (validate/reference.py)
    return ("PASSED", f"{report.summary_line()}; reference set {ref['bytes'] / 1e6:.2f} MB{note}",
            files + list(ref["files"]))


def _step_precision(opts: BuildOptions, layout: BuildLayout, state: BuildState):
    dst = layout.precision_onnx(opts.precision)
    if opts.precision == "fp16":
        from .precision.fp16 import make_fp16_onnx

        result = make_fp16_onnx(state.deploy_onnx, dst, keep_fp32=opts.keep_fp32)
    else:
        from .precision.calibration import calibration_set_for_build
        from .precision.int8 import make_int8_onnx

        calib = calibration_set_for_build(opts.profiles, state.model.size_rule, calib_data=opts.calib_data,
                                          calib_synthetic=opts.calib_synthetic, seed=opts.seed)
        floor = {"cosine_min": opts.tolerances.cos_min} if opts.tolerances.cos_min is not None else {}  # --cos-min
        result = make_int8_onnx(state.deploy_onnx, dst, calib, method=opts.calib_method, keep_fp32=opts.keep_fp32,
                                **floor)
    state.precision_onnx = Path(result.path)
    state.precision_result = result
    detail = f"{len(result.kept_fp32_nodes)} nodes kept in FP32"
    gate = None
    if opts.precision == "int8":  # trained reference weights: held-out top-1 agreement (precision.int8)
        from .precision.int8 import heldout_gate

        gate = heldout_gate(state.model.model, result.path, opts.model, opts.weights, opts.profiles)
        if gate is not None:
            run, agreement = gate
            result.details["heldout_agreement"] = {"run": run, **agreement.to_dict()}
            detail += (f"; held-out top-1 agreement ({run}) " + ", ".join(
                f"{k} {s / t:.3f}" for k, (s, t) in agreement.per_size.items()) + f" (min {agreement.minimum})")
    write_json_atomic(layout.precision_report(opts.precision), result.to_dict())
    artifacts = [layout.rel(result.path), layout.rel(layout.precision_report(opts.precision))]
    if gate is not None and not gate[1].passed:
        raise ParityError(f"int8 held-out top-1 agreement {gate[1].worst:.3f} is below {gate[1].minimum} "
                          f"({detail}; see {artifacts[1]})")
    return "PASSED", detail, artifacts


def _step_cpu(opts: BuildOptions, layout: BuildLayout, state: BuildState):
    from .cpu.accuracy import HELDOUT_N, reference_run_of
    from .cpu.deploy import deploy_cpu, probe_sizes
    from .models import fit_to_profiles

    model = state.model.model
    # INT8 needs real weights: on the random init the logits are noise, so its parity (and any accuracy) means
    # nothing. Held-out top-1 agreement needs the reference task: the trained reference weights only.
    int8 = opts.weights is not None
    run = reference_run_of(opts.model, opts.weights)
    heldout = (probe_sizes(opts.profiles, model.size_rule.patch_size), HELDOUT_N) if run else None
    notes = [] if int8 else [_NO_INT8]
    with tempfile.TemporaryDirectory(prefix="resvit-cpu-") as tmp:
        extra = _always_compute_candidate(opts, state, Path(tmp))
        result = deploy_cpu(model, layout, opts.profiles, deploy_onnx=state.deploy_onnx, raw_onnx=layout.onnx,
                            int8=int8, seed=opts.seed, extra_resolutions=opts.extra_resolutions, heldout=heldout,
                            heldout_batch=opts.profiles[0].batch.opt,  # the batch it will run at (opt)
                            notes=notes, extra_fp32=extra, reference=state.reference)
    detail = result.summary_line() + "".join(f"; {n}" for n in notes)
    if fit_to_profiles(opts.model, opts.profiles, state.model.overrides, runtime_if=True) != state.model.overrides:
        detail += (f"; ATM stages always computed: this graph also serves {', '.join(opts.trt_targets)} "
                   "(before TensorRT 10.11); --target cpu alone gates them")
    files = [p for p in (result.graphs.fp32_path, result.graphs.int8_path, layout.cpu_report) if p is not None]
    files += sorted(p for p in layout.cpu_dir.iterdir() if p.name.startswith("parity"))
    return "PASSED", detail, [layout.rel(p) for p in files]


def _always_compute_candidate(opts: BuildOptions, state: BuildState, work: Path) -> list:
    """ViTAR gated: its always-compute form (same weights) as one more CPU candidate. Gating saves FLOPs, but ORT
    runs each If branch as a subgraph, and on a 2-core CPU the gated graph measured no faster (README Benchmarks)."""
    if not state.model.overrides.get("atm_gate"):
        return []
    from .cpu.candidates import Candidate
    from .export.onnx_export import export_onnx, union_profile
    from .graph.rewrite import RewriteContext, apply_rewrites
    from .models import create_model

    always = create_model(opts.model, seed=opts.seed, **{**state.model.overrides, "atm_gate": False})
    always.load_state_dict(state.model.model.state_dict())
    raw, rewritten = work / "always.onnx", work / "always.rewritten.onnx"
    export_onnx(always, raw, union_profile(opts.profiles), opts.opset)  # as the export step does
    apply_rewrites(raw, rewritten, RewriteContext(opts.profiles, patch_size=state.model.size_rule.patch_size,
                                                  target=None, seed=opts.seed))
    return [Candidate("always-compute", rewritten, "ViTAR with every ATM stage computed (no If), rewritten")]


def _step_plan(opts: BuildOptions, layout: BuildLayout, state: BuildState):
    from .trt.planner import plan_profiles
    from .trt.trtexec import write_trtexec_script

    if not opts.trt_targets:
        return "SKIPPED", _NO_TRT, []
    plan = plan_profiles(state.model.model, opts.profiles, None, opts.precision, device=opts.device,
                         memory_budget=opts.memory_budget)
    write_json_atomic(layout.plan, plan.to_dict())
    write_trtexec_script(plan, layout.rel(state.shipped_onnx), layout.trtexec_script)
    state.plan = plan
    warn = f"; {len(plan.warnings)} warning(s): {plan.warnings[0]}" if plan.warnings else ""
    return "PASSED", f"{len(plan.profiles)} optimization profile(s){warn}", [layout.rel(layout.plan),
                                                                             layout.rel(layout.trtexec_script)]


def _step_engine(opts: BuildOptions, layout: BuildLayout, state: BuildState):
    from ._optional import is_available

    if opts.engine == "skip":
        return "SKIPPED", "--engine skip", []
    if not opts.trt_targets:
        return "SKIPPED", _NO_TRT, []
    if not is_available("tensorrt"):
        return ("DEFERRED",
                "TensorRT is not installed here: build on the target with `bash trtexec.sh` or "
                "`resvit-export bundle` + the bundle's build_engine.sh (see README 'Jetson')", [])
    from .trt.builder import build_engines

    engines = build_engines(state.shipped_onnx, state.plan, layout.root, timing_cache=layout.timing_cache)
    state.engines = engines
    return "PASSED", f"{len(engines)} engine(s) built", [layout.rel(e) for e in engines]


def _step_engine_parity(opts: BuildOptions, layout: BuildLayout, state: BuildState, runner_spec: str | None = None):
    """Each engine built here against the reference set validate wrote: the same matrix, the precision's
    tolerances, parity.engine.* reports, ParityError (exit 3) on a breach. DEFERRED where no engine was built
    (no TensorRT/GPU here: the bundle's build_engine.sh runs the same check on the device); its detail gives the
    reference set's size next to the shipped ONNX's. ``runner_spec``: MODULE:CLASS of the engine runner (None:
    the host's TensorRT runner, validate.engine.DEFAULT_RUNNER; the tests name ONNX Runtime)."""
    from .bundle.device.check_engine import record_path
    from .validate.engine import DEFAULT_RUNNER, _open_runner, load_reference_set, require_engine_runtime
    from .validate.engine import validate_engine

    if not opts.trt_targets:  # --target cpu alone: no engine will exist anywhere, so nothing is deferred either
        return "SKIPPED", _NO_TRT, []
    if not state.engines:
        sizes = ""
        if layout.reference_set.is_file():
            ref = load_reference_set(layout.root)
            ref_bytes = sum((layout.root / f).stat().st_size for f in ref.files)
            onnx = state.shipped_onnx
            sizes = (f" (reference set {ref_bytes / 1e6:.2f} MB, {len(ref.cases)} case x input entries; "
                     f"{onnx.name} {_onnx_bytes(onnx) / 1e6:.1f} MB)") if onnx is not None else ""
        return ("DEFERRED", f"not run: no engine was built here; the device checks its engine against the bundled "
                            f"reference set{sizes} (build_engine.sh runs check_engine.py)", [])
    spec = runner_spec or DEFAULT_RUNNER
    if spec == DEFAULT_RUNNER:
        require_engine_runtime()
    reference = load_reference_set(layout.root).meta.get("reference", "PyTorch")
    lines, files = [], []
    for engine in state.engines:
        out = layout.root if len(state.engines) == 1 else layout.root / f"{Path(engine).stem}.parity"
        runner = _open_runner(Path(engine), spec)
        try:
            report = validate_engine(engine, layout.root, runner=runner, precision=opts.precision,
                                     tolerances=opts.tolerances if opts.tolerances.to_dict() else None, out_dir=out)
        finally:
            runner.close()
        md = BuildLayout(out).engine_parity("md")
        if not report.passed:
            raise ParityError(f"engine {Path(engine).name} parity FAILED: {report.failure_line()} (see "
                              f"{layout.rel(md)}; reference: {reference})")
        lines.append(f"{Path(engine).name}: {report.summary_line()}")
        files += [layout.rel(BuildLayout(out).engine_parity(ext)) for ext in ("json", "md", "png", "junit.xml")]
        files.append(layout.rel(Path(record_path(str(engine)))))  # the verdict beside the engine (inspect reads it)
    return "PASSED", "; ".join(lines) + f"; reference: {reference}", files


def _onnx_bytes(path: Path) -> int:
    """An ONNX file with its external data (``<name>.data``, what the bundle ships with it)."""
    data = Path(f"{path}.data")
    return path.stat().st_size + (data.stat().st_size if data.is_file() else 0)


def _step_manifest(opts: BuildOptions, layout: BuildLayout, state: BuildState, steps: list[StepRecord]):
    from .trt.manifest import write_build_manifest

    result = state.precision_result
    path = write_build_manifest(
        layout.root, plan=state.plan, deploy_onnx=state.deploy_onnx, precision_onnx=state.precision_onnx,
        precision=opts.precision, kept_fp32_nodes=list(result.kept_fp32_nodes) if result else [],
        parity=state.parity, engines=state.engines, model_name=opts.model, overrides=state.model.overrides,
        seed=opts.seed, steps=[(s.name, s.status) for s in steps])
    return "PASSED", "", [layout.rel(path)]
