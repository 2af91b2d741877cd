"""Engine parity on a TensorRT host: an engine checked against the reference set validate wrote.

The same check the device runs from the bundle (``bundle/device/check_engine.check``), called with the build
directory's reference set, writing parity.engine.{json,md,junit.xml,png} (the PNG only here: matplotlib is
a workstation dependency). The callers (``validate DIR --engine PLAN`` through :func:`validate_engine_dir`,
the build's engine-parity step) raise ParityError (exit 3) when the returned report did not pass.

Only the runner differs between a TensorRT host and the tests: ``runner=None`` opens the host's
``trt.runner.EngineRunner`` (Polygraphy's TrtRunner; the device's bundle runs ``run_engine.EngineRunner`` with
the same interface and the same profile choice); the tests pass ONNX Runtime behind that interface.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from resvit_export.bundle.device import check_engine
from resvit_export.bundle.device.reference_set import ReferenceError, ReferenceSet
from resvit_export.errors import InvalidArtifactError, MissingDependencyError, UsageError
from resvit_export.io import sha256_file
from resvit_export.layout import BuildLayout

from .parity import ParityReport

__all__ = ["validate_engine", "validate_engine_dir", "load_reference_set", "require_engine_runtime",
           "engine_precision", "DEFAULT_RUNNER"]

# The host's runner: Polygraphy's TrtRunner behind the device runner's interface (trt/runner.py; checks the
# plan's sidecar manifest first). The device runs bundle/device/run_engine.EngineRunner (tensorrt + cuda-python).
DEFAULT_RUNNER = "resvit_export.trt.runner:EngineRunner"


def load_reference_set(build_dir: str | os.PathLike) -> ReferenceSet:
    """The build directory's verified reference set; InvalidArtifactError (exit 6) when absent or tampered."""
    try:
        return ReferenceSet(str(BuildLayout(build_dir).reference_set))
    except ReferenceError as err:
        raise InvalidArtifactError(str(err)) from None


def require_engine_runtime() -> None:
    """MissingDependencyError (exit 7) unless the host engine runner's modules can be imported: TensorRT's Python
    bindings and Polygraphy (checked without importing them; a missing GPU shows when the runner starts)."""
    from resvit_export._optional import is_available

    missing = [name for name in ("tensorrt", "polygraphy") if not is_available(name)]
    if missing:
        raise MissingDependencyError(
            f"checking an engine needs TensorRT's Python bindings and Polygraphy, but {' and '.join(missing)} "
            f"cannot be imported here; run it on the machine that built the engine (pip install "
            f"'resvit-export[trt]'; on a Jetson use the bundle's check_engine.py, which build_engine.sh runs)")


def engine_precision(plan_path: str | os.PathLike) -> str:
    """'model.fp16.plan' -> 'fp16' (the name build and build_engine.sh give); any other name -> 'fp32'."""
    import re

    m = re.search(r"\.(fp32|fp16|int8)\.", Path(plan_path).name)
    return m.group(1) if m else "fp32"


def _open_runner(plan_path: Path, spec: str = DEFAULT_RUNNER):
    """``MODULE:CLASS`` opened on the plan. A plan that fails its manifest check stays InvalidArtifactError
    (exit 6); any other start-up failure (no GPU, a host mismatch, another TensorRT version) is exit 7 with the
    runner's reason, as on the device (check_engine.py)."""
    try:
        return check_engine.load_runner(spec, str(plan_path))
    except check_engine.UsageError as err:
        raise UsageError(str(err)) from None
    except check_engine.RunnerError as err:
        cause = err.__context__
        if isinstance(cause, InvalidArtifactError):
            raise cause from None
        raise MissingDependencyError(str(err)) from None


def validate_engine(plan_path: str | os.PathLike, build_dir: str | os.PathLike, *, runner=None,
                    precision: str | None = None, tolerances=None, out_dir: str | os.PathLike | None = None,
                    progress: Callable[[str], None] | None = None) -> ParityReport:
    """Run the reference set's matrix on an engine and compare with PyTorch's recorded outputs.

    Args:
        plan_path: the engine file.
        build_dir: where validate wrote the reference set (reference.json + reference.npz).
        runner: an object with the device runner interface (``input_name``, ``profiles``, ``infer``, ``close``);
            None opens :data:`DEFAULT_RUNNER` on ``plan_path`` (TensorRT + a GPU), closed after.
        precision: tolerances to apply; None: from the plan's name (model.fp16.plan), else fp32.
        tolerances: overrides (``Tolerances`` or ``ToleranceOverrides``; None fields keep); the base is what
            validate used for this precision (recorded in the reference set), else the precision's defaults.
        out_dir: where parity.engine.* go (None: ``build_dir``).
        progress: called with one line per case.

    Returns:
        The report (``report.passed``; ``report.skipped`` lists cases the engine could not hold). The verdict is
        also recorded beside the plan (``<plan>.check.json``, as the device's check_engine.py does).

    Raises:
        InvalidArtifactError: the plan is not a file, no or a tampered reference set, or an input that does not
            reproduce its hash.
        MissingDependencyError: ``runner`` None and the TensorRT runner cannot start.
    """
    plan_path = Path(plan_path)
    if not plan_path.is_file():
        raise InvalidArtifactError(f"engine {plan_path} is not a file; build it first (resvit-export build where "
                                   "TensorRT is, or the bundle's build_engine.sh)")
    reference = load_reference_set(build_dir)
    precision = precision or engine_precision(plan_path)
    try:
        ns = check_engine.tolerances_for(precision, reference, tolerances.to_dict() if tolerances else None)
    except check_engine.UsageError as err:
        raise UsageError(str(err)) from None
    own = runner is None
    if own:
        runner = _open_runner(plan_path)
    artifact = {"path": str(plan_path), "sha256": sha256_file(plan_path),
                "runtime": f"{type(runner).__module__}.{type(runner).__name__}"}
    try:
        d = check_engine.check(runner, reference, precision, ns, artifact=artifact, progress=progress)
    except ReferenceError as err:
        raise InvalidArtifactError(str(err)) from None
    finally:
        if own:
            runner.close()
    safe = check_engine.core.json_safe(d)
    report = ParityReport.from_dict(safe)
    from .report import write_reports

    paths = write_reports(report, out_dir if out_dir is not None else build_dir, engine=True)
    line = f"{'PASSED' if report.passed else 'FAILED'} | resvit-export engine parity | " + (
        report.summary_line() if report.passed else report.failure_line())
    check_engine.write_record(str(plan_path), 0 if report.passed else 3, line, safe, str(paths["json"]))
    return report


def validate_engine_dir(build_dir: str | os.PathLike, plan_path: str | os.PathLike, *, precision: str | None = None,
                        tolerances=None, allow_unverified: bool = False, runner_spec: str | None = None,
                        progress: Callable[[str], None] | None = None) -> ParityReport:
    """``validate DIR --engine PLAN``: verify, then run :func:`validate_engine` with DIR's reference set.

    Refused before any case runs, in this order: DIR not a directory or PLAN not a file (exit 6); the reference
    set missing or tampered with (reference.json against DIR's status.json, which must be PASSED unless
    ``allow_unverified``; reference.npz against reference.json) (exit 6); for the default runner, TensorRT or
    Polygraphy not importable (exit 7). Only then is the runner opened: ``runner_spec`` MODULE:CLASS (default
    :data:`DEFAULT_RUNNER`; the tests name ONNX Runtime behind the same interface); a runner that cannot start
    is exit 7 too (6 when the plan fails its manifest check). The parity.engine.* reports are written into DIR
    while DIR is locked; status.json is left as it is (the verdict of the build or validate that made the
    reference set)."""
    from resvit_export.preflight import require_modules
    from resvit_export.staging import output_lock
    from resvit_export.status import require_passed

    root = Path(build_dir)
    if not root.is_dir():
        raise InvalidArtifactError(f"{root} is not a directory; pass the output directory of `resvit-export build` "
                                   "(or `validate`), which holds the reference set")
    plan_path = Path(plan_path)
    if not plan_path.is_file():
        raise InvalidArtifactError(f"--engine {plan_path} is not a file; build the engine first (resvit-export "
                                   "build where TensorRT is, or the bundle's build_engine.sh)")
    layout = BuildLayout(root)
    load_reference_set(root)  # a clear message for a missing or inconsistent set before the status check
    require_passed(root, allow_unverified, consumes=[layout.rel(layout.reference_set)], producer_only=True)
    require_modules(["matplotlib"])
    if runner_spec is None or runner_spec == DEFAULT_RUNNER:
        require_engine_runtime()
    with output_lock(root):
        runner = _open_runner(plan_path, runner_spec or DEFAULT_RUNNER)
        try:
            return validate_engine(plan_path, root, runner=runner, precision=precision, tolerances=tolerances,
                                   progress=progress)
        finally:
            runner.close()
