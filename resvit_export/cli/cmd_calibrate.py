"""``resvit-export calibrate MODEL``: a multi-resolution calibration set, its cached ranges and a TensorRT cache."""

from __future__ import annotations

import time
from pathlib import Path

import click

from resvit_export.errors import InvalidArtifactError, UsageError

from .common import final_line, handle_errors

DEFAULT_RESOLUTIONS = "224,512,1024"


def _pick_onnx(target: Path) -> Path:
    if target.is_file():
        return target
    if target.is_dir():
        for name in ("model.rewritten.onnx", "model.onnx"):
            if (target / name).is_file():
                return target / name
        found = sorted(p for p in target.glob("*.onnx") if ".fp16." not in p.name and ".int8." not in p.name)
        if len(found) == 1:
            return found[0]
        raise InvalidArtifactError(f"{target} holds no model.onnx / model.rewritten.onnx; pass the ONNX file itself")
    raise InvalidArtifactError(f"{target} does not exist; pass an export directory or an FP32 .onnx file")


def _profile_resolutions(target: Path) -> list[tuple[int, int]] | None:
    """min/opt/max of every profile recorded in DIR/export.json (None when there is none)."""
    record = target / "export.json" if target.is_dir() else target.parent / "export.json"
    if not record.is_file():
        return None
    import json

    from resvit_export.precision.calibration import resolutions_from_profile
    from resvit_export.profiles import BatchRange, ResolutionProfile

    try:
        profiles = json.loads(record.read_text()).get("profiles") or []
        out: list[tuple[int, int]] = []
        for d in profiles:
            p = ResolutionProfile(tuple(d["min"]), tuple(d["max"]), tuple(d["opt"]) if d.get("opt") else None,
                                  BatchRange())
            out += [hw for hw in resolutions_from_profile(p) if hw not in out]
        return out or None
    except (ValueError, KeyError, TypeError):
        return None


@click.command()
@click.argument("target", metavar="MODEL_DIR_OR_ONNX", type=click.Path(path_type=Path))
@click.option("--calib-data", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder of calibration images (PNG/JPEG, resized per resolution, ImageNet-normalised) "
                   "or .npy/.npz arrays.")
@click.option("--calib-synthetic", type=click.IntRange(1, 100000), default=None, metavar="N",
              help="Use N deterministic real-image-like synthetic images instead of --calib-data.")
@click.option("--calib-resolutions", default=None, metavar="S[,HxW...]",
              help=f"Resolutions to calibrate at  [default: the profile's min,opt,max from export.json, "
                   f"else {DEFAULT_RESOLUTIONS}]")
@click.option("--calib-method", type=click.Choice(["entropy", "minmax", "percentile"]), default="entropy",
              show_default=True, help="ONNX Runtime calibration method (symmetric ranges).")
@click.option("--calib-batch", type=click.IntRange(1, 256), default=4, show_default=True,
              help="Images per calibration batch.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Use at most this many images from --calib-data.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --calib-synthetic.")
@click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Calibration set directory  [default: calibration/<model name>]")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Range cache directory  [default: <output>/../cache, i.e. calibration/cache]")
@click.option("--trt-version", default="10.3.0", show_default=True,
              help="TensorRT version written into the calibration cache header (JetPack 6 = 10.3.0).")
@handle_errors
def calibrate(target, calib_data, calib_synthetic, calib_resolutions, calib_method, calib_batch, limit, seed,
              output, cache_dir, trt_version):
    """Build a multi-resolution INT8 calibration set and compute (or reuse) its activation ranges.

    \b
    Writes OUTPUT/calib.npz + calib.json (the set), OUTPUT/calib.cache (TensorRT calibration cache for the
    TRT<=10 implicit-INT8 path; not executed against TensorRT here) and the range cache in --cache-dir, keyed by
    (ONNX sha256, set sha256, method). For TensorRT 11 use the Q/DQ ONNX from `build --int8` instead.
    """
    started = time.monotonic()
    from resvit_export.precision.calibration import (
        NO_DATA_HINT,
        CalibrationSet,
        compute_ranges,
        parse_resolutions,
        write_trt_calibration_cache,
    )

    if calib_data is not None and calib_synthetic is not None:
        raise UsageError("--calib-data and --calib-synthetic conflict: pass one of them")
    if calib_data is None and calib_synthetic is None:
        raise UsageError(NO_DATA_HINT)
    onnx_path = _pick_onnx(target)
    if calib_resolutions:
        resolutions = parse_resolutions(calib_resolutions)
    else:
        resolutions = _profile_resolutions(target) or parse_resolutions(DEFAULT_RESOLUTIONS)
    name = onnx_path.parent.name if onnx_path.name.startswith("model") else onnx_path.name.split(".")[0]
    output = output or Path("calibration") / name
    cache_dir = cache_dir or output.parent / "cache"
    if calib_synthetic is not None:
        cset = CalibrationSet.synthetic(calib_synthetic, resolutions, seed=seed, name=output.name)
    else:
        cset = CalibrationSet.from_folder(calib_data, resolutions, limit=limit, name=output.name)
    cset.save(output)
    click.echo(f"calibration set {output}: {cset.count} images x {len(cset.resolutions)} resolutions "
               f"({', '.join(f'{h}x{w}' for h, w in cset.resolutions)}), sha256 {cset.sha256[:12]}", err=True)
    ranges = compute_ranges(onnx_path, cset, calib_method, cache_dir=cache_dir, batch_size=calib_batch)
    click.echo(f"ranges for {len(ranges.ranges)} tensors ({calib_method}): "
               f"{'cache hit' if ranges.cache_hit else f'computed in {ranges.seconds:.1f}s'} -> {ranges.cache_path}",
               err=True)
    trt_cache = write_trt_calibration_cache(ranges.amax(), output / "calib.cache", trt_version=trt_version)
    final_line(True, "calibrate", started,
               f"{len(ranges.ranges)} tensors, {calib_method}, {'cache hit' if ranges.cache_hit else 'cache miss'}"
               f" | {trt_cache}")
