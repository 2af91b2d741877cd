"""``resvit-export validate DIR``: prove an exported ONNX against its PyTorch reference over the profile range."""

from __future__ import annotations

import time
from pathlib import Path

import click

from resvit_export.errors import InvalidArtifactError, ParityError

from .common import final_line, handle_errors


@click.command()
@click.argument("export_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@click.option("--onnx", "onnx_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="ONNX to validate (default: DIR/model.rewritten.onnx if present, else DIR/model.onnx; "
                   "DIR/model.PRECISION.onnx for --precision fp16/int8).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default=None,
              help="Selects default tolerances and report names (parity.fp16.*).  [default: fp32]")
@click.option("--resolutions", default=None, metavar="HxW[,HxW]",
              help="Extra sizes to check, e.g. 320x1024,97x301 (must lie inside the profile).")
@click.option("--profile", "profiles", multiple=True, metavar="PROFILE",
              help="Validate over this profile instead of the one(s) in export.json (repeatable).")
@click.option("--atol", type=float, default=None, help="Absolute tolerance (elementwise, with --rtol).")
@click.option("--rtol", type=float, default=None, help="Relative tolerance (an element passes atol OR rtol).")
@click.option("--cos-min", type=float, default=None, help="Minimum cosine similarity per case.")
@click.option("--top1-min", type=float, default=None, help="Minimum top-1 agreement over all cases.")
@click.option("--inputs", "input_kind", type=click.Choice(["both", "gaussian", "synthetic"]), default=None,
              help="Input kinds per case.  [default: both]")
@click.option("--isolated/--in-process", default=None,
              help="Run ONNX Runtime in a child process so a crash is reported, not fatal "
                   "[default: isolated for fp16/int8].")
@handle_errors
def validate(export_dir, onnx_file, precision, resolutions, profiles, atol, rtol, cos_min, top1_min, input_kind,
             isolated):
    """Check DIR's ONNX against PyTorch over the resolution matrix; exit 3 on a tolerance breach.

    Writes parity.{json,md,png} (parity.PRECISION.* for fp16/int8) and, last, status.json into DIR.
    """
    from resvit_export.validate.report import report_paths

    started = time.monotonic()
    report = _run(export_dir, onnx_file, precision or "fp32", resolutions, profiles,
                  dict(atol=atol, rtol=rtol, cos_min=cos_min, top1_min=top1_min), input_kind or "both", isolated,
                  started)
    if not report.passed:
        final_line(False, "validate", started, report.failure_line())
        md = report_paths(export_dir, report.precision)["md"]
        raise ParityError(f"{report.precision} parity FAILED ({len(report.failed_cases)}/{len(report.cases)} cases); "
                          f"per-case table in {md}")
    final_line(True, "validate", started, report.summary_line())


def _pick_onnx(export_dir: Path, onnx_file: Path | None, precision: str) -> Path:
    if onnx_file is not None:
        if not onnx_file.is_file():
            raise InvalidArtifactError(f"--onnx {onnx_file} does not exist")
        return onnx_file
    names = ["model.rewritten.onnx", "model.onnx"] if precision == "fp32" else [f"model.{precision}.onnx"]
    for name in names:
        if (export_dir / name).is_file():
            return export_dir / name
    raise InvalidArtifactError(f"{export_dir} holds none of {', '.join(names)}; pass --onnx FILE")


def _run(export_dir, onnx_file, precision, resolutions, profile_texts, overrides, input_kind, isolated, started):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from resvit_export.export.record import load_reference_model, profile_from_dict
    from resvit_export.profiles import parse_profile
    from resvit_export.validate.parity import default_tolerances, validate_onnx, validate_packed_navit
    from resvit_export.validate.report import report_paths

    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise InvalidArtifactError(f"{export_dir} is not a directory; pass the output directory of "
                                   f"`resvit-export export` or `build`")
    model, record = load_reference_model(export_dir)  # InvalidArtifactError (exit 6) without export.json
    onnx_path = _pick_onnx(export_dir, onnx_file, precision)
    packed = record.get("entry") == "packed"  # PackedNaViT: packings instead of a resolution matrix
    if packed or profile_texts:
        profiles = [parse_profile(t) for t in profile_texts]
    else:
        profiles = [profile_from_dict(d) for d in record.get("profiles") or []]
        if not profiles:
            raise InvalidArtifactError(f"{export_dir / 'export.json'} records no profiles; pass --profile")
    tol = default_tolerances(precision).with_overrides(**overrides)
    if isolated is None:
        isolated = precision != "fp32"
    console = Console(stderr=True)
    status = {"command": "validate", "onnx": str(onnx_path), "precision": precision}
    try:
        with Progress(TextColumn("[bold]validate[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("starting", total=None)

            def progress(desc, done, total):
                bar.update(task, description=desc, completed=done, total=total)

            if packed:
                report = validate_packed_navit(model, onnx_path, out_dir=export_dir, tolerances=tol,
                                               precision=precision, isolated=isolated)
            else:
                report = validate_onnx(model, onnx_path, profiles, precision=precision, tolerances=tol,
                                       extra_resolutions=resolutions or (), out_dir=export_dir, isolated=isolated,
                                       input_kind=input_kind, progress=progress)
    except BaseException as err:
        code = getattr(err, "exit_code", 130 if isinstance(err, KeyboardInterrupt) else 1)
        _write_status(export_dir, {**status, "status": "FAILED", "exit_code": code,
                                   "error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"},
                      started)
        raise
    paths = report_paths(export_dir, report.precision)
    _write_status(export_dir, {**status, "status": "PASSED" if report.passed else "FAILED",
                               "exit_code": 0 if report.passed else ParityError.exit_code,
                               "error": None if report.passed else f"ParityError: {report.failure_line()}",
                               "parity": report.summary_dict(),
                               "reports": [p.name for p in paths.values()]}, started)
    return report


def _write_status(export_dir: Path, data: dict, started: float) -> None:
    """status.json, written last. A status.json left by another command (e.g. build) is kept inside it."""
    import json
    import platform

    from resvit_export import __version__
    from resvit_export.io import write_json_atomic

    path = export_dir / "status.json"
    previous = None
    try:
        old = json.loads(path.read_text())
        if isinstance(old, dict):
            previous = old.get("previous") if old.get("command") == "validate" else old
    except (OSError, ValueError):
        pass
    data = {**data, "seconds": round(time.monotonic() - started, 2), "resvit_export": __version__,
            "host": platform.node()}
    if previous is not None:
        data["previous"] = previous
    write_json_atomic(path, data)
