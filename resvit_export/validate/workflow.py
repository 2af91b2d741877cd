"""``validate DIR`` as a library workflow: verify the directory, prove its ONNX against the PyTorch
reference over the resolution matrix, and record the verdict in status.json (the one writer).

Before any work: the directory's build/export status must be PASSED (or ``allow_unverified``), export.json
must match its schema, the ONNX and export.json must still match their recorded sha256, the ONNX must have
the one image input the matrix feeds, and every extra resolution must lie inside a profile. While it runs
the directory is locked (a build cannot swap it away) and status.json says RUNNING, so an interrupted
validate never leaves an earlier PASSED verdict over new reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from resvit_export.errors import InvalidArtifactError, ParityError
from resvit_export.layout import BuildLayout
from resvit_export.preflight import ToleranceOverrides, check_resolutions, require_modules
from resvit_export.profiles import ResolutionProfile

__all__ = ["ValidateOptions", "validate_export_dir", "pick_onnx"]


@dataclass(frozen=True)
class ValidateOptions:
    export_dir: Path
    onnx_file: Path | None = None  # default: the deployed graph of ``precision`` (see pick_onnx)
    precision: str = "fp32"
    resolutions: Sequence[tuple[int, int]] = ()
    profiles: Sequence[ResolutionProfile] = ()  # default: the profiles recorded in export.json
    tolerances: ToleranceOverrides = field(default_factory=ToleranceOverrides)
    input_kind: str = "both"
    isolated: bool | None = None  # default: isolated for fp16/int8
    allow_unverified: bool = False


def pick_onnx(layout: BuildLayout, precision: str) -> Path:
    """The graph ``validate``/``calibrate`` use in a directory: the deployed FP32 graph (rewritten, else the
    raw export) or model.PRECISION.onnx."""
    names = [layout.rewritten_onnx, layout.onnx] if precision == "fp32" else [layout.precision_onnx(precision)]
    for path in names:
        if path.is_file():
            return path
    raise InvalidArtifactError(f"{layout.root} holds none of {', '.join(p.name for p in names)}; pass --onnx FILE")


def _single_image_input(onnx_path: Path) -> None:
    import onnx

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise InvalidArtifactError(f"{onnx_path} is not a readable ONNX model ({type(err).__name__})") from None
    inits = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise InvalidArtifactError(f"{onnx_path} has {len(inputs)} inputs {inputs}; validate feeds models with one "
                                   "image input [B, 3, H, W] (export it with `resvit-export export`)")


def validate_export_dir(opts: ValidateOptions, progress: Callable[[str, int, int], None] | None = None):
    """Run the parity matrix for ``opts`` and write reports + status.json into the directory.

    Returns the ParityReport (check ``report.passed``; the status records FAILED with exit 3 on a breach).
    Raises InvalidArtifactError (exit 6) for a directory or file that fails verification, UsageError (2) for
    bad options, MissingDependencyError (7) - all before any report is written.
    """
    from resvit_export.export.record import load_reference_model
    from resvit_export.staging import output_lock
    from resvit_export.status import require_passed, write_status

    started = time.monotonic()
    root = Path(opts.export_dir)
    if not root.is_dir():
        raise InvalidArtifactError(f"{root} is not a directory; pass the output directory of `resvit-export "
                                   "export` or `build`")
    require_modules(["onnx", "onnxruntime", "polygraphy", "matplotlib"])
    tolerances = opts.tolerances.resolve(opts.precision)
    layout = BuildLayout(root)
    with output_lock(root):
        onnx_path = Path(opts.onnx_file) if opts.onnx_file is not None else pick_onnx(layout, opts.precision)
        if not onnx_path.is_file():
            raise InvalidArtifactError(f"--onnx {onnx_path} does not exist")
        consumed = [layout.rel(layout.export_record)]
        if onnx_path.resolve().parent == root.resolve():
            consumed.append(onnx_path.name)
        status = require_passed(root, opts.allow_unverified, consumes=consumed, producer_only=True)
        model, record = load_reference_model(root)  # schema, ONNX and weights sha256 against export.json
        packed = record.get("entry") == "packed"
        if not packed:
            _single_image_input(onnx_path)
        if packed or opts.profiles:
            profiles = list(opts.profiles)
        else:
            from resvit_export.profiles import profile_from_dict

            profiles = [profile_from_dict(d) for d in record.get("profiles") or []]
            if not profiles:
                raise InvalidArtifactError(f"{layout.export_record} records no profiles; pass --profile")
        extra = check_resolutions(opts.resolutions, profiles, model.size_rule) if not packed else []
        producer = status.producer if status is not None else None
        unverified = status is None or producer is None or not producer.passed
        details = {"onnx": layout.rel(onnx_path), "precision": opts.precision, "tolerances": tolerances.to_dict(),
                   "profiles": [str(p) for p in profiles]}
        files = status.files if status is not None else None
        write_status(root, "validate", "RUNNING", started=started, details=details, previous=producer,
                     allow_unverified=unverified, files=files)
        isolated = opts.precision != "fp32" if opts.isolated is None else opts.isolated
        try:
            if packed:
                from resvit_export.validate.parity import validate_packed_navit

                report = validate_packed_navit(model, onnx_path, out_dir=root, tolerances=tolerances,
                                               precision=opts.precision, isolated=isolated)
            else:
                from resvit_export.validate.parity import validate_onnx

                report = validate_onnx(model, onnx_path, profiles, precision=opts.precision, tolerances=tolerances,
                                       extra_resolutions=extra, out_dir=root, isolated=isolated,
                                       input_kind=opts.input_kind, progress=progress)
        except Exception as err:
            write_status(root, "validate", "FAILED", started=started, error=err, details=details,
                         previous=producer, allow_unverified=unverified)
            raise
        details["parity"] = report.summary_dict()
        if report.passed:
            write_status(root, "validate", "PASSED", started=started, details=details, previous=producer,
                         allow_unverified=unverified)
        else:
            write_status(root, "validate", "FAILED", started=started, details=details, previous=producer,
                         allow_unverified=unverified, exit_code=ParityError.exit_code,
                         error=f"ParityError: {report.failure_line()}")
    return report
