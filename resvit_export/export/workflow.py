"""``export`` as a library workflow: options checked before any work, the export staged and swapped in,
status.json written by the one writer. The ``build`` pipeline's export step calls :func:`export_prepared`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from resvit_export.errors import UsageError
from resvit_export.io import check_output_dir
from resvit_export.layout import BuildLayout
from resvit_export.preflight import PreparedModel, prepare_model, require_modules
from resvit_export.profiles import BatchRange, ResolutionProfile

__all__ = ["ExportOptions", "ExportOutcome", "export_prepared", "export_to_dir"]


@dataclass(frozen=True)
class ExportOptions:
    model: str
    profiles: list[ResolutionProfile]
    out_dir: Path
    batch: BatchRange | None = None  # folded into each plain-range profile; None: keep theirs
    opset: int = 18
    weights: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    packed: bool = False  # NaViT only: the packed-sequence graph
    force: bool = False
    verbose: bool = False


@dataclass(frozen=True)
class ExportOutcome:
    out_dir: Path
    result: Any  # resvit_export.export.onnx_export.ExportResult
    union: ResolutionProfile


def export_prepared(prepared: PreparedModel, layout: BuildLayout, profiles: list[ResolutionProfile], *,
                    opset: int, seed: int, weights: Path | None, packed: bool = False, verbose: bool = False):
    """Export the checked model into ``layout`` and write export.json next to it; returns the ExportResult."""
    from .onnx_export import export_onnx, export_packed_navit, union_profile
    from .record import build_record, write_record

    union = union_profile(profiles)
    if packed:
        result = export_packed_navit(prepared.model, layout.onnx, opset, verbose=verbose)
    else:
        result = export_onnx(prepared.model, layout.onnx, union, opset, verbose=verbose)
    record = build_record(result, model=prepared.name, family=prepared.family, overrides=prepared.overrides,
                          seed=seed, weights=weights, profiles=profiles, entry="packed" if packed else "image",
                          extra={"union_profile": union.to_dict()})
    write_record(layout.root, record)
    return result


def export_to_dir(opts: ExportOptions, progress: Callable[[str], Any] | None = None) -> ExportOutcome:
    """Check everything, then export into ``opts.out_dir`` (staged: a failure or kill never leaves a
    half-written directory under that name). Raises the export's error after writing a FAILED status.json."""
    from resvit_export.models import get_entry
    from resvit_export.staging import staged_output
    from resvit_export.status import write_status

    from .onnx_export import union_profile

    started = time.monotonic()
    if not opts.profiles:
        raise UsageError("give at least one --profile (e.g. 224-1792)")
    if opts.packed:  # a module:factory model has no registry entry; only the packed path needs the family
        family = get_entry(opts.model).family
        if family != "navit":
            raise UsageError(f"--packed is only for NaViT models; {opts.model} is a {family} model")
    require_modules(["onnx", "onnxscript"])
    check_output_dir(opts.out_dir, opts.force)  # before the model is built: a wrong -o fails at once
    profiles = [p if opts.batch is None or p.input_name else dataclasses.replace(p, batch=opts.batch)
                for p in opts.profiles]
    # overrides fitted to the profile (models.contract.fit_to_profiles); the packed graph has no profile
    prepared = prepare_model(opts.model, opts.overrides, seed=opts.seed, weights=opts.weights, profiles=profiles,
                             fit_to_profiles=not opts.packed)
    union = union_profile(profiles)
    details = {"model": opts.model, "overrides": prepared.overrides, "seed": opts.seed,
               "weights": str(opts.weights) if opts.weights else None, "profiles": [str(p) for p in profiles],
               "entry": "packed" if opts.packed else "image", "opset": opts.opset}
    with staged_output(opts.out_dir, force=opts.force) as stage:
        layout = BuildLayout(stage.path)
        write_status(stage.path, "export", "RUNNING", started=started, details=details)
        try:
            if progress is not None:
                progress(f"exporting {opts.model} ({'packed' if opts.packed else union}) to ONNX opset "
                               f"{opts.opset}...")
            result = export_prepared(prepared, layout, profiles, opset=opts.opset, seed=opts.seed,
                                     weights=opts.weights, packed=opts.packed, verbose=opts.verbose)
        except Exception as err:
            err.status_path = stage.fail("export", started, err, details)
            raise
        details.update(range_constraints=result.range_constraints, onnx_sha256=result.onnx_sha256,
                       export_seconds=round(result.seconds, 3))
        write_status(stage.path, "export", "PASSED", started=started, details=details)
        out = stage.publish()
    return ExportOutcome(out, dataclasses.replace(result, onnx_path=out / result.onnx_path.name,
                                                  data_path=out / result.data_path.name if result.data_path else None),
                         union)
