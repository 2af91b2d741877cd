"""``resvit-export validate DIR``: prove an exported ONNX against its PyTorch reference over the profile range;
with ``--engine PLAN``, prove a TensorRT engine against the reference set the build recorded in DIR."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .common import final_line, handle_errors
from .options import PROFILE, RESOLUTIONS, allow_unverified_option, compose, tolerance_options, \
    tolerance_overrides


@click.command()
@click.argument("export_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--onnx", "onnx_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="ONNX to validate (default: DIR/model.rewritten.onnx if present, else DIR/model.onnx; "
                   "DIR/model.PRECISION.onnx for --precision fp16/int8).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default=None,
              help="Selects default tolerances and report names (parity.fp16.*) [default: fp32; with --engine: "
                   "from the plan's name, model.PRECISION.plan].")
@click.option("--engine", "engine_file", type=click.Path(path_type=Path), default=None,
              help="Check this TensorRT engine instead of an ONNX: the reference set's whole matrix runs on it "
                   "(needs TensorRT and a GPU); writes parity.engine.{json,md,png,junit.xml}.")
@click.option("--runner", "runner_spec", default=None, metavar="MODULE:CLASS",
              help="With --engine: the engine runner class (default: resvit_export.trt.runner:EngineRunner, "
                   "Polygraphy's TrtRunner); any class with the device runner interface works.")
@click.option("--resolutions", type=RESOLUTIONS, default=None,
              help="Extra sizes to check, e.g. 320x1024,97x301 (must lie inside the profile).")
@click.option("--profile", "profiles", multiple=True, type=PROFILE,
              help="Validate over this profile instead of the one(s) in export.json (repeatable).")
@compose(tolerance_options)
@click.option("--inputs", "input_kind", type=click.Choice(["both", "gaussian", "synthetic"]), default="both",
              show_default=True, help="Input kinds per case.")
@click.option("--isolated/--in-process", default=None,
              help="Run ONNX Runtime in a child process so a crash is reported, not fatal "
                   "[default: isolated for fp16/int8].")
@allow_unverified_option
@handle_errors
def validate(export_dir, onnx_file, precision, engine_file, runner_spec, resolutions, profiles, atol, rtol, cos_min,
             top1_min, input_kind, isolated, allow_unverified):
    """Check DIR's ONNX against PyTorch over the resolution matrix; exit 3 on a tolerance breach.

    DIR must hold a PASSED build or export (exit 6 otherwise, or when a file changed since).
    Writes parity.{json,md,png} (parity.PRECISION.* for fp16/int8) and, last, status.json into DIR.

    With --engine PLAN: runs DIR's reference set (PyTorch's recorded outputs) on the engine and writes
    parity.engine.* into DIR and the verdict beside the plan (PLAN.check.json, what `inspect` shows); status.json
    is left alone. Exit 6 for a PLAN that is not a file or a missing or
    tampered reference set, then 7 when TensorRT is missing - both before any case runs.
    """
    if engine_file is not None:
        _validate_engine(export_dir, engine_file, precision, runner_spec, resolutions, profiles, onnx_file,
                         input_kind, isolated, tolerance_overrides(atol, rtol, cos_min, top1_min), allow_unverified)
        return
    if runner_spec is not None:
        from resvit_export.errors import UsageError

        raise UsageError("--runner applies to --engine only")
    precision = precision or "fp32"
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from resvit_export.errors import ParityError
    from resvit_export.validate.report import report_paths
    from resvit_export.validate.workflow import ValidateOptions, validate_export_dir

    started = time.monotonic()
    opts = ValidateOptions(export_dir=export_dir, onnx_file=onnx_file, precision=precision,
                           resolutions=resolutions or (), profiles=profiles,
                           tolerances=tolerance_overrides(atol, rtol, cos_min, top1_min), input_kind=input_kind,
                           isolated=isolated, allow_unverified=allow_unverified)
    with Progress(TextColumn("[bold]validate[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting", total=None)
        report = validate_export_dir(opts, progress=lambda desc, done, total: bar.update(
            task, description=desc, completed=done, total=total))
    if not report.passed:
        final_line(False, "validate", started, report.failure_line())
        md = report_paths(export_dir, report.precision)["md"]
        raise ParityError(f"{report.precision} parity FAILED ({len(report.failed_cases)}/{len(report.cases)} cases); "
                          f"per-case table in {md}")
    final_line(True, "validate", started, report.summary_line())


def _validate_engine(export_dir, engine_file, precision, runner_spec, resolutions, profiles, onnx_file, input_kind,
                     isolated, overrides, allow_unverified):
    """``validate DIR --engine PLAN`` over the library's validate_engine_dir."""
    from resvit_export.errors import ParityError, UsageError
    from resvit_export.validate.engine import validate_engine_dir

    started = time.monotonic()
    given = (("--onnx", onnx_file is not None), ("--resolutions", bool(resolutions)), ("--profile", bool(profiles)),
             ("--isolated/--in-process", isolated is not None), ("--inputs", input_kind != "both"))
    ignored = [flag for flag, used in given if used]
    if ignored:
        raise UsageError(f"{ignored[0]} does not apply to --engine: the engine runs the reference set's matrix "
                         "exactly (re-run `resvit-export validate DIR` with it to change the matrix)")
    from rich.console import Console
    from rich.markup import escape

    head = "[bold]validate --engine[/bold]"
    with Console(stderr=True).status(f"{head} starting") as shown:  # transient: gone when the run ends
        report = validate_engine_dir(export_dir, engine_file, precision=precision, tolerances=overrides,
                                     allow_unverified=allow_unverified, runner_spec=runner_spec,
                                     progress=lambda line: shown.update(f"{head} {escape(line)}"))
    if not report.passed:
        final_line(False, "validate", started, report.failure_line())
        raise ParityError(f"engine parity FAILED ({len(report.failed_cases)}/{len(report.cases)} cases); per-case "
                          f"table in {Path(export_dir) / 'parity.engine.md'}")
    final_line(True, "validate", started, report.summary_line())
