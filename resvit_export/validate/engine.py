"""Engine parity on a TensorRT host: an engine checked against the reference set validate wrote.

The same check the device runs from the bundle (``bundle/device/check_engine.check``), called with the build
directory's reference set, writing parity.engine.{json,md,junit.xml,png} (the PNG only here: matplotlib is
a workstation dependency). The callers (``validate DIR --engine PLAN``, the pipeline's engine-parity step)
raise ParityError (exit 3) when the returned report did not pass.
"""

from __future__ import annotations

import os
from pathlib import Path

from resvit_export.bundle.device import check_engine
from resvit_export.bundle.device.reference_set import ReferenceError, ReferenceSet
from resvit_export.errors import InvalidArtifactError, MissingDependencyError, UsageError
from resvit_export.io import sha256_file
from resvit_export.layout import BuildLayout, precision_of_onnx

from .parity import ParityReport, Tolerances

__all__ = ["validate_engine", "load_reference_set"]


def load_reference_set(build_dir: str | os.PathLike) -> ReferenceSet:
    """The build directory's verified reference set; InvalidArtifactError (exit 6) when absent or tampered."""
    try:
        return ReferenceSet(str(BuildLayout(build_dir).reference_set))
    except ReferenceError as err:
        raise InvalidArtifactError(str(err)) from None


def validate_engine(plan_path: str | os.PathLike, build_dir: str | os.PathLike, *, runner=None,
                    precision: str | None = None, tolerances: Tolerances | None = None,
                    out_dir: str | os.PathLike | None = None) -> ParityReport:
    """Run the reference set's matrix on an engine and compare with PyTorch's recorded outputs.

    Args:
        plan_path: the engine file.
        build_dir: where validate wrote the reference set (reference.json + reference.npz).
        runner: an object with the device runner interface (``input_name``, ``profiles``, ``infer``, ``close``);
            None opens ``bundle/device/run_engine.EngineRunner(plan_path)`` (TensorRT + CUDA), closed after.
        precision: tolerances to apply; None: from the plan's name (model.fp16.plan), else fp32.
        tolerances: overrides; None: what validate used for this precision, else the precision's defaults.
        out_dir: where parity.engine.* go (None: ``build_dir``).

    Returns:
        The report (``report.passed``; ``report.skipped`` lists cases the engine could not hold).

    Raises:
        InvalidArtifactError: no or a tampered reference set, or an input that does not reproduce its hash.
        UsageError: the plan file does not exist.
    """
    plan_path = Path(plan_path)
    if not plan_path.is_file():
        raise UsageError(f"engine {plan_path} does not exist; build it first (resvit-export build where TensorRT is)")
    reference = load_reference_set(build_dir)
    precision = precision or precision_of_onnx(plan_path.name.replace(".plan", ".onnx"))
    try:
        ns = check_engine.tolerances_for(precision, reference, tolerances.to_dict() if tolerances else None)
    except check_engine.UsageError as err:
        raise UsageError(str(err)) from None
    own = runner is None
    if own:
        try:
            runner = check_engine.load_runner("resvit_export.bundle.device.run_engine:EngineRunner", str(plan_path))
        except check_engine.RunnerError as err:
            raise MissingDependencyError(str(err)) from None
    artifact = {"path": str(plan_path), "sha256": sha256_file(plan_path),
                "runtime": f"{type(runner).__module__}.{type(runner).__name__}"}
    try:
        d = check_engine.check(runner, reference, precision, ns, artifact=artifact)
    except ReferenceError as err:
        raise InvalidArtifactError(str(err)) from None
    finally:
        if own:
            runner.close()
    report = ParityReport.from_dict(check_engine.core.json_safe(d))
    from .report import write_reports

    write_reports(report, out_dir if out_dir is not None else build_dir, engine=True)
    return report
