"""Parity: PyTorch eager FP32 (the reference) vs ONNX Runtime on every case of the resolution matrix.

Each case runs twice, once with Gaussian pixels and once with synthetic real-image-like pixels; every such
forward runs once per side, PyTorch and ONNX Runtime at the same time (``sides``), and cases whose batch and
token grid another case runs are merged where the graph proves that checks nothing new (``grid_proof``,
``matrix.merge_same_grid``; the report lists them). Per case and input kind the report keeps max-abs, mean-abs and max-rel error (Polygraphy's ``SimpleCompareFunc`` stats),
the cosine similarity (Polygraphy's ``CosineSimilarityCompareFunc``, per batch row, the minimum is kept),
top-1 agreement, where the largest error sits (batch row + output index) and the latency of both sides.

Gates (``Tolerances``; defaults per precision, chosen for the random-weight models this project ships):

    precision  atol   rtol   cos_min   top1_min
    fp32       1e-4   1e-3   0.99999   1.0      FP32 graph vs FP32 eager: only op-order rounding differs
    fp16       5e-2   5e-2   0.999     0.9      FP16 rounding (~1e-3 relative per op) accumulates over depth
    int8       -      -      0.98      0.8      quantisation noise; absolute error is not meaningful

* atol/rtol are Polygraphy's elementwise rule: an element passes if |diff| <= atol OR |diff|/|ref| <= rtol;
  ``None`` disables the element check (it is still reported).
* cos_min gates every case (the minimum over its batch rows).
* top1_min gates the agreement over ALL rows of all cases: random-weight models have near-uniform logits, so
  single-row top-1 flips under FP16/INT8 noise are expected and a per-case gate at batch 1 would be all-or-nothing.
  At fp32 (top1_min 1.0) this is the same as requiring every row to agree.

A breach is not a warning: ``ParityReport.passed`` is False and the caller raises ParityError (exit 3).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as _dt
import os
import platform
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from resvit_export.bundle.device import parity_core as core
from resvit_export.errors import UsageError
from resvit_export.profiles import ResolutionProfile

from .inputs import INPUT_KINDS, case_seed, make_inputs
from .matrix import Case, MergedCase, merge_same_grid, resolution_matrix

__all__ = ["Tolerances", "CaseResult", "ParityReport", "validate_onnx", "validate_packed_navit", "compare_outputs",
           "default_tolerances"]

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Tolerances:
    """Pass/fail thresholds. ``None`` for atol/rtol means not gated (still reported)."""

    atol: float | None = 1e-4
    rtol: float | None = 1e-3
    cos_min: float = 0.99999
    top1_min: float = 1.0

    def __post_init__(self):
        for name in ("atol", "rtol"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise UsageError(f"--{name} must be >= 0, got {v}")
        if not -1.0 <= self.cos_min <= 1.0:
            raise UsageError(f"--cos-min must lie in [-1, 1], got {self.cos_min}")
        if not 0.0 <= self.top1_min <= 1.0:
            raise UsageError(f"--top1-min must lie in [0, 1], got {self.top1_min}")

    def with_overrides(self, **kw: float | None) -> "Tolerances":
        """A copy with the non-None keyword values replaced (CLI flags default to None)."""
        return dataclasses.replace(self, **{k: v for k, v in kw.items() if v is not None})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_DEFAULTS = {p: Tolerances(**values) for p, values in core.DEFAULT_TOLERANCES.items()}


def default_tolerances(precision: str) -> Tolerances:
    if precision not in _DEFAULTS:
        raise UsageError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return _DEFAULTS[precision]


@dataclass
class CaseResult:
    """One case × input kind."""

    name: str
    kind: str
    input: str
    batch: int
    h: int
    w: int
    tokens: int
    output: str
    max_abs: float
    mean_abs: float
    max_rel: float
    cosine: float
    top1: float
    top1_rows: int  # rows that agree
    worst_row: int
    worst_index: list[int]
    torch_ms: float
    ort_ms: float
    passed: bool
    failures: list[str] = field(default_factory=list)
    budget: float = 0.0  # largest fraction of a tolerance used (>1 = breach)

    def to_dict(self) -> dict:
        return core.json_safe(dataclasses.asdict(self))


@dataclass
class ParityReport:
    """Everything one validation run found; ``bool(report)`` is ``report.passed``."""

    model: str
    onnx_path: str
    onnx_sha256: str
    precision: str
    tolerances: Tolerances
    profiles: list[str]
    cases: list[CaseResult]
    top1_agreement: float
    seconds: float
    versions: dict[str, str]
    date: str
    isolated: bool = False
    merged: list[MergedCase] = field(default_factory=list)  # cases not run: same batch and grid as a run case
    timing: dict = field(default_factory=dict)  # how the latency columns were measured
    reference_set: dict | None = None  # files and bytes of the reference set written with the report
    # engine checks only (parity.engine.*): what the device could not run, what ran row by row, and names
    skipped: list[dict] = field(default_factory=list)
    split: list[dict] = field(default_factory=list)
    label: str = "parity"
    reference: str = "PyTorch eager FP32 on CPU"
    artifact: dict | None = None  # default: the ONNX file on ONNX Runtime CPU
    # PyTorch's outputs behind this report, for the build's next matrix of the same model (not serialised)
    reference_runs: Any = field(default=None, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return core.report_passed(self._records(), self.top1_agreement, self.tolerances.top1_min)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def failed_cases(self) -> list[CaseResult]:
        return [c for c in self.cases if not c.passed]

    @property
    def worst(self) -> CaseResult | None:
        """The case that used the largest fraction of any tolerance (ties: larger max-abs)."""
        return max(self.cases, key=lambda c: (c.budget, c.max_abs)) if self.cases else None

    def _records(self) -> list[dict]:
        return [dataclasses.asdict(c) for c in self.cases]

    def summary_line(self) -> str:
        extra = (f", {len(self.merged)} same-grid merged" if self.merged else "") + (
            f", {len(self.skipped)} skipped" if self.skipped else "")
        return core.summary_line(self.precision, self._records(), self.top1_agreement, self.tolerances.top1_min,
                                 extra=extra, label=self.label)

    def failure_line(self) -> str:
        """One line naming the worst breach and where it sits (for ParityError messages)."""
        return core.failure_line(self._records(), self.top1_agreement, self.tolerances.top1_min)

    def summary_dict(self) -> dict:
        w = self.worst
        return {
            "passed": self.passed,
            "precision": self.precision,
            "cases": len(self.cases),
            "failed": len(self.failed_cases),
            "merged": [m.case.name for m in self.merged],
            "top1_agreement": self.top1_agreement,
            "worst": None if w is None else {"name": w.name, "input": w.input, "max_abs": w.max_abs,
                                             "cosine": w.cosine, "budget": w.budget},
            "tolerances": self.tolerances.to_dict(),
        }

    def to_dict(self) -> dict:
        w = self.worst
        return {
            "passed": self.passed,
            "summary": self.summary_line(),
            "failure": None if self.passed else self.failure_line(),
            "model": self.model,
            "onnx": self.onnx_path,
            "onnx_sha256": self.onnx_sha256,
            "precision": self.precision,
            "tolerances": self.tolerances.to_dict(),
            "profiles": self.profiles,
            "top1_agreement": self.top1_agreement,
            "isolated": self.isolated,
            "reference": self.reference,
            "artifact": self.artifact or {
                "path": self.onnx_path, "sha256": self.onnx_sha256, "label": "ORT",
                "runtime": "ONNX Runtime CPU" + (" (isolated child process)" if self.isolated else "")},
            "worst": None if w is None else w.to_dict(),
            "cases": [c.to_dict() for c in self.cases],
            "merged": [m.to_dict() for m in self.merged],
            "timing": self.timing,
            "reference_set": self.reference_set,
            "skipped": self.skipped,
            "split": self.split,
            "seconds": round(self.seconds, 3),
            "versions": self.versions,
            "date": self.date,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ParityReport":
        """The report back from its parity*.json form (JSON nulls in float fields become NaN/inf)."""
        def case(c: dict) -> CaseResult:
            c = dict(c)
            for k in ("max_abs", "mean_abs", "max_rel", "cosine", "torch_ms", "ort_ms"):
                c[k] = float("nan") if c[k] is None else c[k]
            c["budget"] = float("inf") if c["budget"] is None else c["budget"]
            return CaseResult(**{k: c[k] for k in core.CASE_KEYS})

        merged = [MergedCase(Case(m["name"], m["batch"], m["h"], m["w"], m["kind"]), m["into"], m["reason"])
                  for m in d.get("merged") or []]
        return cls(model=d["model"], onnx_path=d.get("onnx") or "", onnx_sha256=d.get("onnx_sha256") or "",
                   precision=d["precision"], tolerances=Tolerances(**d["tolerances"]), profiles=list(d["profiles"]),
                   cases=[case(c) for c in d["cases"]], top1_agreement=d["top1_agreement"], seconds=d["seconds"],
                   versions=dict(d["versions"]), date=d["date"], isolated=bool(d.get("isolated")), merged=merged,
                   timing=dict(d.get("timing") or {}), reference_set=d.get("reference_set"),
                   skipped=list(d.get("skipped") or []), split=list(d.get("split") or []),
                   label="engine parity" if (d.get("artifact") or {}).get("label") == "engine" else "parity",
                   reference=d.get("reference") or "PyTorch eager FP32 on CPU", artifact=d.get("artifact"))



def _polygraphy_backend():
    """Polygraphy's SimpleCompareFunc / CosineSimilarityCompareFunc as the core's statistics functions."""
    from resvit_export._optional import require

    require("polygraphy")
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.CRITICAL  # results go into our report, not Polygraphy's log
    import polygraphy.comparator as comparator
    from polygraphy.comparator.struct import IterationResult

    def stats(ref, got, atol, rtol):
        fn = comparator.SimpleCompareFunc(atol=atol, rtol=rtol, check_error_stat="elemwise",
                                          infinities_compare_equal=True)
        st = fn(IterationResult({"y": ref}, runner_name="pytorch"), IterationResult({"y": got}, runner_name="artifact"))["y"]
        return {"max_absdiff": float(st.max_absdiff), "mean_absdiff": float(st.mean_absdiff),
                "max_reldiff": float(st.max_reldiff), "passed": bool(st)}

    def cosine(a, b):
        fn = comparator.CosineSimilarityCompareFunc(cosine_similarity_threshold=-1.0)
        res = fn(IterationResult({"y": a}, runner_name="pytorch"), IterationResult({"y": b}, runner_name="artifact"))
        return float(res["y"].cosine_similarity)

    return stats, cosine


def compare_outputs(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], tol: Tolerances) -> dict[str, Any]:
    """Compare one case's outputs (name -> array, same names) with Polygraphy's comparators.

    Returns the metrics of the output with the largest tolerance budget, plus ``failures`` (list of str).
    The logic is ``bundle/device/parity_core.compare_outputs``; the device runs it with numpy statistics
    that are proven equal to these.
    """
    stats, cosine = _polygraphy_backend()
    return core.compare_outputs(ref, got, tol, stats=stats, cosine=cosine)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("resvit-export", "torch", "onnx", "onnxruntime", "polygraphy", "numpy"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _plan_cases(profiles, rule, extra_resolutions, batch_sizes, onnx_path, merge: bool):
    """The matrix, with same-grid cases merged where the graph proves it checks nothing new."""
    from .grid_proof import prove_patch_grid_input

    cases: list[Case] = resolution_matrix(profiles, rule, extra_resolutions, batch_sizes)
    if not merge:
        return cases, []
    proof = prove_patch_grid_input(onnx_path, rule.patch_size)
    if not proof.holds:
        return cases, []
    return merge_same_grid(cases, rule.patch_size, proof.reason)


def pick_reference_device(requested: str | None = None) -> str:
    """Where PyTorch computes the reference: ``requested`` ('cpu' or 'cuda'), else CUDA when torch sees a GPU.

    Asking for 'cuda' where torch has none is a UsageError rather than a silent CPU run, so a report never
    names a device that did not compute it.
    """
    import torch

    if requested is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested not in ("cpu", "cuda"):
        raise UsageError(f"unknown reference device {requested!r}; use cpu or cuda")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError("reference device cuda asked for, but this PyTorch sees no CUDA GPU; use cpu")
    return requested


@contextlib.contextmanager
def strict_fp32(device: str):
    """On CUDA, turn TF32 off while the reference runs: cuDNN convolutions use TF32 by default (10-bit
    mantissa), which would make the 'FP32' reference less exact than the graphs it judges."""
    import torch

    if device != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _timing_note(reference: "ReferenceRuns", ort_threads: int, concurrent: bool, warm: bool) -> dict:
    ahead = reference.how.startswith("ahead")
    return {
        "runs": "each compared forward ran once per side",
        "reference": reference.how,  # ahead: PyTorch ran during export, ONNX Runtime alone in validate
        "reference_busy_s": round(reference.busy_s, 2) if ahead else None,  # the child's wall, start-up included
        "reference_device": reference.device,  # torch_ms is GPU time when this says cuda: compare it with care
        "concurrent": concurrent and not ahead,
        "threads": {"pytorch": reference.threads, "onnxruntime": ort_threads},
        "threads_per_side": None if reference.threads != ort_threads else ort_threads,
        "latency": ("best compared run at the shape after its first (the warm-up)" if warm else
                    "the first run at each shape (cold): only one input kind ran per shape"),
    }


def _import_report_libraries_meanwhile():
    """Import (and warm up) what the comparison and the plot need while ONNX Runtime runs (it releases the
    GIL): measured, matplotlib.pyplot's import 0.53 s and a first figure's one-off set-up 0.15 s. Returns the
    thread: join it before plotting (matplotlib is not thread-safe)."""
    import threading

    def work():
        with contextlib.suppress(Exception):  # a missing library is reported where it is used
            import io

            import matplotlib

            matplotlib.use("Agg", force=True)
            import matplotlib.pyplot as plt
            import polygraphy.comparator  # noqa: F401

            fig, ax = plt.subplots(figsize=(1, 1), dpi=20)
            ax.scatter([1, 2], [1, 2], label="x")
            ax.set_yscale("log")
            ax.legend()
            fig.savefig(io.BytesIO(), format="png")
            plt.close(fig)

    thread = threading.Thread(target=work, name="resvit-imports", daemon=True)
    thread.start()
    return thread


def _artifact_against(reference, jobs, out_names, onnx_path, feeds, tol, *, isolated, threads, label, progress):
    """ONNX Runtime alone on ``feeds`` against reference runs computed before; each output is compared in a
    helper thread while the next feed runs (ORT releases the GIL). Returns (SideRuns, {job index: metrics})."""
    from concurrent.futures import ThreadPoolExecutor

    from .sides import run_artifact_side

    warming = _import_report_libraries_meanwhile()
    ref = [reference.outputs[j.key] for j in jobs]
    pending = {}
    with ThreadPoolExecutor(1, thread_name_prefix="resvit-compare") as pool:
        def compare_now(j, got):
            pending[j] = pool.submit(compare_outputs, dict(zip(out_names, ref[j])), got, tol)

        runs = run_artifact_side(ref, [reference.seconds[j.key] for j in jobs], onnx_path, feeds,
                                 isolated=isolated, threads=threads, label=label, progress=progress,
                                 on_output=compare_now)
        metrics = {j: f.result() for j, f in pending.items()}
    warming.join()
    return runs, metrics


def validate_onnx(
    model,
    onnx_path: str | os.PathLike,
    profiles: ResolutionProfile | Sequence[ResolutionProfile],
    *,
    precision: str = "fp32",
    tolerances: Tolerances | None = None,
    extra_resolutions: Sequence = (),
    out_dir: str | os.PathLike | None = None,
    isolated: bool = False,
    input_kind: str = "both",
    batch_sizes: Sequence[int] | None = None,
    seed: int = 0,
    threads: int | None = None,
    concurrent: bool = True,
    merge: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
    reference_device: str | None = None,
    reference: "ReferenceRuns | None" = None,
) -> ParityReport:
    """Compare ``model`` (PyTorch eager FP32, the reference) with ``onnx_path`` on ONNX Runtime CPU.

    Args:
        model: the reference ``ResolutionFlexibleModel`` (eval mode; it is run in FP32).
        onnx_path: the artifact to prove (fp32, fp16 or int8 graph).
        profiles: the profile(s) the artifact is built for; the case matrix is derived from them.
        precision: selects the default tolerances and the report file suffix (fp32 | fp16 | int8).
        tolerances: overrides the precision's defaults (see the module docstring).
        extra_resolutions: user sizes ('320x1024,97x301' or [(H, W)]); must lie inside a profile.
        out_dir: when given, parity{,.fp16,.int8}.{json,md,png} are written there (atomically).
        isolated: run ONNX Runtime in a child process (a crash becomes InvalidArtifactError).
        input_kind: 'gaussian', 'synthetic' or 'both'.
        batch_sizes: batch sizes for the batch > 1 cases (None: from the profile).
        seed: base seed for the inputs (each case derives its own stable seed).
        threads: intra-op threads for each side (None: half the cores, 1 to 4). Both sides get the same count
            so the latency columns compare like with like; more threads than free cores makes PyTorch's
            OpenMP barriers spin (10-20x slower on a loaded 2-core box).
        concurrent: run PyTorch and ONNX Runtime at the same time (default) or one after the other.
        merge: drop cases whose batch and token grid another case runs, where the graph proves that checks
            nothing new (``matrix.merge_same_grid``); the report lists them.
        progress: ``progress(description, done, total)`` after each run.
        reference_device: torch device type for the PyTorch side (None: CUDA when torch sees a GPU, else CPU;
            see :func:`pick_reference_device`). The reference set records it.
        reference: PyTorch's outputs computed before for this model (``reference_runs.ReferenceAhead`` during
            export, or an earlier report's ``reference_runs``); used when it covers every job (same cases,
            input kinds and seed), and ONNX Runtime then runs alone on every core. Otherwise (or None) PyTorch
            runs here, beside ONNX Runtime.

    Returns:
        A ParityReport; the caller raises ParityError when ``report.passed`` is False.

    Raises:
        UsageError: bad precision/input kind/extra resolution. InvalidArtifactError: ORT cannot load, run or
        crashed on the ONNX.
    """
    import torch

    from resvit_export.io import sha256_file

    from .runners import onnx_io_names
    from .reference_runs import ReferenceRuns, matrix_jobs
    from .sides import OnDemand, all_threads, default_threads, run_both_sides, warm_latency

    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    kinds = INPUT_KINDS if input_kind == "both" else (input_kind,)
    if any(k not in INPUT_KINDS for k in kinds):
        raise UsageError(f"unknown input kind {input_kind!r}; use gaussian, synthetic or both")
    tol = tolerances if tolerances is not None else default_tolerances(precision)
    threads = threads if threads is not None else default_threads()
    profiles = [profiles] if isinstance(profiles, ResolutionProfile) else list(profiles)
    rule = model.size_rule
    in_names, out_names = onnx_io_names(onnx_path)
    if len(in_names) != 1:
        raise UsageError(f"{onnx_path} has inputs {in_names}; validate_onnx handles single-image-input models")
    cases, merged = _plan_cases(profiles, rule, extra_resolutions, batch_sizes, onnx_path, merge)
    started = time.monotonic()
    jobs = matrix_jobs(cases, kinds, seed)
    ahead = reference is not None and reference.covers(jobs)
    inputs = OnDemand(len(jobs), lambda j: reference.input_of(jobs[j]) if ahead else jobs[j].make_input())
    feeds = OnDemand(len(jobs), lambda j: {in_names[0]: inputs[j]})
    label = lambda j: f"{jobs[j].case.name} [{jobs[j].kind}]"  # noqa: E731
    done = 0

    def tick(desc):
        nonlocal done
        done += 1
        if progress:
            progress(desc, done, 2 * len(jobs))

    metrics: dict[int, dict] = {}  # job -> comparison, where it was made while ONNX Runtime ran
    if ahead:  # PyTorch's side is done: ONNX Runtime alone, on every core
        device, ort_threads, ref_runs = reference.device, all_threads(), reference
        for j in range(len(jobs)):
            tick(f"pytorch {label(j)} (computed ahead)")
        runs, metrics = _artifact_against(reference, jobs, out_names, onnx_path, feeds, tol, isolated=isolated,
                                          threads=ort_threads, label=label, progress=tick)
    else:
        device, ort_threads = pick_reference_device(reference_device), threads
        model = model.float().eval()
        ref_model = model if device == "cpu" else copy.deepcopy(model).to(device)  # the caller's model stays put
        with strict_fp32(device):
            runs = run_both_sides(lambda j: ref_model(torch.from_numpy(inputs[j]).to(device)), onnx_path, feeds,
                                  isolated=isolated, threads=threads, concurrent=concurrent, label=label,
                                  progress=tick)
        ref_runs = ReferenceRuns({}, {}, device, threads).merged_with(jobs, runs.ref, runs.ref_s)
    shapes = [(j.case.batch, j.case.h, j.case.w) for j in jobs]
    torch_lat, warm = warm_latency(shapes, runs.ref_s)
    ort_lat, _ = warm_latency(shapes, runs.got_s)
    results: list[CaseResult] = []
    rows_total = rows_agree = 0
    for j, job in enumerate(jobs):
        case, kind = job.case, job.kind
        ref = dict(zip(out_names, runs.ref[j]))
        if j in runs.ort_errors:
            m = _ort_rejected(out_names[0], runs.ort_errors[j])
        else:
            m = metrics.get(j) or compare_outputs(ref, runs.got[j], tol)
        rows_total += case.batch
        rows_agree += m["top1_rows"]
        results.append(CaseResult(
            name=case.name, kind=case.kind, input=kind, batch=case.batch, h=case.h, w=case.w,
            tokens=case.tokens(rule.patch_size), output=m["output"], max_abs=m["max_abs"],
            mean_abs=m["mean_abs"], max_rel=m["max_rel"], cosine=m["cosine"], top1=m["top1"],
            top1_rows=m["top1_rows"], worst_row=m["worst_row"], worst_index=m["worst_index"],
            torch_ms=torch_lat[j] * 1e3, ort_ms=ort_lat[j] * 1e3, passed=not m["failures"],
            failures=m["failures"], budget=m["budget"]))
    report = ParityReport(
        model=getattr(model, "model_name", type(model).__name__), onnx_path=str(onnx_path),
        onnx_sha256=sha256_file(onnx_path), precision=precision, tolerances=tol,
        profiles=[str(p) for p in profiles], cases=results,
        top1_agreement=rows_agree / rows_total if rows_total else 1.0, seconds=time.monotonic() - started,
        versions=_versions(), date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        isolated=isolated, merged=merged, timing=_timing_note(ref_runs, ort_threads, concurrent, warm))
    report.reference_runs = ref_runs
    if out_dir is not None:
        from .reference import ReferenceEntry, write_reference_set
        from .report import write_reports

        entries = [ReferenceEntry(j.case.name, j.case.kind, j.kind, j.case.batch, j.case.h, j.case.w,
                                  j.case.tokens(rule.patch_size), j.seed, x, ref, ref_runs.input_sha256.get(j.key))
                   for j, x, ref in zip(jobs, inputs, runs.ref)]
        info = write_reference_set(out_dir, entries, model=report.model, profiles=report.profiles,
                                   input_name=in_names[0], output_names=out_names, seed=seed, precision=precision,
                                   tolerances=tol.to_dict(), merged=[m.to_dict() for m in merged],
                                   torch_version=torch.__version__,
                                   reference_device=device)
        report.reference_set = info.to_dict()
        write_reports(report, out_dir)
    return report


def _ort_rejected(output: str, message: str) -> dict[str, Any]:
    """A size ONNX Runtime refused to run: a failing case in the report, not an abort."""
    return core.not_compared(output, f"ONNX Runtime cannot run this size: {message.split(': ', 1)[-1]}")


# --- packed NaViT ----------------------------------------------------------------------------------------

# Default packings, in patches (scaled by the model's patch size): (image sizes, max_seq_len in tokens or None).
_PACKINGS: tuple[tuple[tuple[tuple[int, int], ...], int | None], ...] = (
    (((4, 4),), None),  # one image, one sequence
    (((2, 6), (6, 2), (3, 3)), None),  # mixed aspect ratios, capacity = the largest image
    (((2, 3), (6, 4), (4, 8), (8, 4), (2, 12)), 64),  # several per sequence, ragged fill
    (((10, 10), (2, 2), (2, 2), (3, 2), (2, 5)), 128),  # one large image plus small fillers
)
_OFF_GRID = (0, 1, 7)  # pixels added to sides (cycled) so the floor rule is exercised too


def validate_packed_navit(
    model,
    onnx_path: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    packings: Sequence[tuple[Sequence[tuple[int, int]], int | None]] | None = None,
    tolerances: Tolerances | None = None,
    precision: str = "fp32",
    seed: int = 0,
    threads: int | None = None,
    isolated: bool = False,
    concurrent: bool = True,
) -> ParityReport:
    """Compare ``models.navit.PackedNaViT`` eager with its packed ONNX on several packings.

    Each packing is a list of image sizes (pixels) packed by ``models.navit.pack_images`` (first-fit) into
    sequences of ``max_seq_len`` tokens (None: the largest image). The outputs are unpacked to one row per
    image, so "worst row" names the image. Both Gaussian and synthetic pixels are used; each compared run
    happens once per side, both sides at once (``concurrent``), as in :func:`validate_onnx`.

    Args:
        model: a NaViT or PackedNaViT (the reference).
        onnx_path: the packed export (inputs patches, coords, grid_hw, image_ids, image_valid).
        out_dir: when given, the reports are written there (parity.packed.*).
        packings: [(sizes, max_seq_len), ...]; None = four built-in packings (single image, mixed aspect
            ratios, ragged multi-image sequences, one large image plus fillers; some sides off the patch grid).

    Returns:
        A ParityReport (precision label ``packed`` for fp32 so the files do not overwrite the image-path reports).
    """
    import torch

    from resvit_export.io import sha256_file
    from resvit_export.models.navit import NaViT, PackedNaViT, pack_images, unpack_logits

    from .reference_runs import ReferenceRuns
    from .runners import onnx_io_names
    from .sides import default_threads, run_both_sides, warm_latency

    packed = PackedNaViT(model) if isinstance(model, NaViT) else model
    if not isinstance(packed, PackedNaViT):
        raise UsageError(f"validate_packed_navit needs a NaViT or PackedNaViT, got {type(model).__name__}")
    packed = packed.float().eval()
    p = packed.model.cfg.patch_size
    tol = tolerances if tolerances is not None else default_tolerances(precision)
    threads = threads if threads is not None else default_threads()
    if packings is None:
        packings = [([(gh * p + _OFF_GRID[i % 3], gw * p + _OFF_GRID[(i + 1) % 3]) for i, (gh, gw) in enumerate(s)],
                     cap) for s, cap in _PACKINGS]
    in_names, out_names = onnx_io_names(onnx_path)
    started = time.monotonic()
    jobs = []
    for k, (sizes, cap) in enumerate(packings):
        for kind in INPUT_KINDS:
            imgs = [torch.from_numpy(make_inputs(kind, 1, h, w, case_seed(f"packed{k}:{i}:{kind}", seed))[0])
                    for i, (h, w) in enumerate(sizes)]
            batch = pack_images(imgs, patch_size=p, max_seq_len=cap)
            jobs.append((k, kind, sizes, batch))
    fields = ("patches", "coords", "grid_hw", "image_ids", "image_valid")
    feeds = []
    for _, _, _, batch in jobs:
        arrays = [t.numpy() for t in batch.inputs()]
        feeds.append({n: arrays[fields.index(n)] for n in in_names} if set(in_names) <= set(fields)
                     else dict(zip(in_names, arrays)))
    runs = run_both_sides(lambda j: packed(*jobs[j][3].inputs()), onnx_path, feeds, isolated=isolated,
                          threads=threads, concurrent=concurrent, label=lambda j: f"packing {jobs[j][0]} [{jobs[j][1]}]")
    shapes = [tuple(np.shape(v) for v in f.values()) for f in feeds]
    torch_lat, warm = warm_latency(shapes, runs.ref_s)
    ort_lat, _ = warm_latency(shapes, runs.got_s)
    results, rows_total, rows_agree = [], 0, 0
    name = out_names[0]
    for j, (k, kind, sizes, batch) in enumerate(jobs):
        r_img = unpack_logits(torch.from_numpy(runs.ref[j][0]), batch).numpy()
        if j in runs.ort_errors:
            m = _ort_rejected(name, runs.ort_errors[j])
        else:
            got = np.asarray(runs.got[j][name], dtype=np.float32)
            g_img = unpack_logits(torch.from_numpy(got), batch).numpy()
            m = compare_outputs({name: r_img}, {name: g_img}, tol)
            # empty slots must stay exactly zero (the graph masks them)
            empty = ~batch.image_valid.numpy()
            if empty.any() and np.abs(got[empty]).max() != 0:
                m["failures"].append("empty image slots are not zero in the ONNX output")
        rows_total += len(sizes)
        rows_agree += m["top1_rows"]
        S, N = batch.patches.shape[:2]
        hmax, wmax = max(sizes, key=lambda s: s[0] * s[1])
        results.append(CaseResult(
            name=f"packed{k}-{len(sizes)}img-S{S}xN{N}", kind="packed", input=kind, batch=len(sizes),
            h=hmax, w=wmax, tokens=int(S * N), output=m["output"], max_abs=m["max_abs"],
            mean_abs=m["mean_abs"], max_rel=m["max_rel"], cosine=m["cosine"], top1=m["top1"],
            top1_rows=m["top1_rows"], worst_row=m["worst_row"], worst_index=m["worst_index"],
            torch_ms=torch_lat[j] * 1e3, ort_ms=ort_lat[j] * 1e3, passed=not m["failures"],
            failures=m["failures"], budget=max(m["budget"], 1.0 + 1e-9) if m["failures"] else m["budget"]))
    report = ParityReport(
        model=getattr(packed.model, "model_name", "navit") + " (packed)", onnx_path=str(onnx_path),
        onnx_sha256=sha256_file(onnx_path), precision="packed" if precision == "fp32" else f"packed.{precision}",
        tolerances=tol, profiles=[f"{len(packings)} packings"], cases=results,
        top1_agreement=rows_agree / rows_total if rows_total else 1.0, seconds=time.monotonic() - started,
        versions=_versions(), date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        isolated=isolated, timing=_timing_note(ReferenceRuns({}, {}, "cpu", threads), threads, concurrent, warm))
    if out_dir is not None:
        from .report import write_reports

        write_reports(report, out_dir)
    return report
