"""``calibrate`` as a library workflow: a multi-resolution calibration set, its activation ranges (cached)
and a TensorRT calibration cache, with the input checked first and the verdict in OUTPUT/status.json."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from resvit_export.errors import InvalidArtifactError
from resvit_export.layout import BuildLayout
from resvit_export.preflight import check_calibration_source, check_seed, require_modules

__all__ = ["CalibrateOptions", "CalibrateOutcome", "calibrate_to_dir", "DEFAULT_RESOLUTIONS"]

DEFAULT_RESOLUTIONS = "224,512,1024"


@dataclass(frozen=True)
class CalibrateOptions:
    target: Path  # a PASSED build/export directory, or an FP32 .onnx file
    calib_data: Path | None = None
    calib_synthetic: int | None = None
    resolutions: list[tuple[int, int]] | None = None  # None: the profiles' min/opt/max from export.json
    method: str = "entropy"
    batch_size: int = 4
    limit: int | None = None
    seed: int = 0
    output: Path | None = None  # default calibration/<model name>
    cache_dir: Path | None = None  # default <output>/../cache
    trt_version: str = "10.3.0"
    allow_unverified: bool = False


@dataclass(frozen=True)
class CalibrateOutcome:
    output: Path
    calibration_set: object  # CalibrationSet
    ranges: object  # CalibrationRanges
    trt_cache: Path


def _source(opts: CalibrateOptions) -> tuple[Path, list[tuple[int, int]] | None]:
    """The FP32 graph to calibrate and the resolutions its export recorded (None when there is no record)."""
    from resvit_export.status import require_passed
    from resvit_export.validate.workflow import pick_onnx

    target = Path(opts.target)
    if target.is_file():
        return target, None
    if not target.is_dir():
        raise InvalidArtifactError(f"{target} does not exist; pass a build/export directory or an FP32 .onnx file")
    layout = BuildLayout(target)
    onnx_path = pick_onnx(layout, "fp32")
    require_passed(target, opts.allow_unverified, consumes=[onnx_path.name, layout.rel(layout.export_record)]
                   if layout.export_record.is_file() else [onnx_path.name], producer_only=True)
    if not layout.export_record.is_file():
        return onnx_path, None
    from resvit_export.export.record import read_record
    from resvit_export.profiles import profile_from_dict

    from .calibration import resolutions_from_profile

    out: list[tuple[int, int]] = []
    for d in read_record(target).get("profiles") or []:
        out += [hw for hw in resolutions_from_profile(profile_from_dict(d)) if hw not in out]
    return onnx_path, out or None


def calibrate_to_dir(opts: CalibrateOptions) -> CalibrateOutcome:
    from resvit_export.staging import output_lock
    from resvit_export.status import write_status

    from .calibration import BUILTIN_CALIB, CalibrationSet, compute_ranges, parse_resolutions, write_trt_calibration_cache

    started = time.monotonic()
    check_calibration_source("int8", opts.calib_data, opts.calib_synthetic)
    check_seed(opts.seed)
    require_modules(["onnx", "onnxruntime"])
    onnx_path, recorded = _source(opts)
    resolutions = parse_resolutions(opts.resolutions or recorded or DEFAULT_RESOLUTIONS)
    name = onnx_path.parent.name if onnx_path.name.startswith("model") else onnx_path.name.split(".")[0]
    output = Path(opts.output or Path("calibration") / name)
    cache_dir = opts.cache_dir or output.parent / "cache"
    details = {"onnx": str(onnx_path), "method": opts.method, "resolutions": [list(r) for r in resolutions]}
    with output_lock(output):
        output.mkdir(parents=True, exist_ok=True)
        write_status(output, "calibrate", "RUNNING", started=started, details=details,
                     allow_unverified=opts.allow_unverified)
        try:
            if opts.calib_synthetic is not None:
                cset = CalibrationSet.synthetic(opts.calib_synthetic, resolutions, seed=opts.seed, name=output.name)
            elif str(opts.calib_data) == BUILTIN_CALIB:
                cset = CalibrationSet.builtin(resolutions, name=output.name)
            else:
                cset = CalibrationSet.from_folder(opts.calib_data, resolutions, limit=opts.limit, name=output.name)
            cset.save(output)
            ranges = compute_ranges(onnx_path, cset, opts.method, cache_dir=cache_dir, batch_size=opts.batch_size)
            trt_cache = write_trt_calibration_cache(ranges.amax(), output / "calib.cache",
                                                    trt_version=opts.trt_version)
        except Exception as err:
            write_status(output, "calibrate", "FAILED", started=started, error=err, details=details,
                         allow_unverified=opts.allow_unverified)
            raise
        details.update(calibration_sha256=cset.sha256, tensors=len(ranges.ranges), cache_hit=ranges.cache_hit,
                       range_cache=str(ranges.cache_path))
        write_status(output, "calibrate", "PASSED", started=started, details=details,
                     allow_unverified=opts.allow_unverified)
    return CalibrateOutcome(output, cset, ranges, trt_cache)
