"""``resvit-export calibrate DIR|ONNX``: a multi-resolution calibration set, its cached ranges and a TensorRT cache."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .common import final_line, handle_errors
from .options import SEED_MAX, RESOLUTIONS, allow_unverified_option, calibration_options

from resvit_export.precision.workflow import DEFAULT_RESOLUTIONS


@click.command()
@click.argument("target", metavar="DIR_OR_ONNX", type=click.Path(path_type=Path))
@calibration_options
@click.option("--calib-resolutions", type=RESOLUTIONS, default=None, metavar="S[,HxW...]",
              help=f"Resolutions to calibrate at  [default: the profile's min,opt,max from export.json, "
                   f"else {DEFAULT_RESOLUTIONS}]")
@click.option("--calib-batch", type=click.IntRange(1, 256), default=4, show_default=True,
              help="Images per calibration batch.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Use at most this many images from --calib-data.")
@click.option("--seed", type=click.IntRange(0, SEED_MAX), default=0, show_default=True,
              help="Seed of --calib-synthetic.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Calibration set directory  [default: calibration/<model name>]")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Range cache directory  [default: <output>/../cache, i.e. calibration/cache]")
@click.option("--trt-version", default="10.3.0", show_default=True,
              help="TensorRT version written into the calibration cache header (JetPack 6 = 10.3.0).")
@allow_unverified_option
@handle_errors
def calibrate(target, calib_data, calib_synthetic, calib_method, calib_resolutions, calib_batch, limit, seed,
              output, cache_dir, trt_version, allow_unverified):
    """Build a multi-resolution INT8 calibration set and compute (or reuse) its activation ranges.

    \b
    Writes OUTPUT/calib.npz + calib.json (the set), OUTPUT/calib.cache (TensorRT calibration cache for the
    TRT<=10 implicit-INT8 path; not executed against TensorRT here), OUTPUT/status.json, and the range cache in
    --cache-dir, keyed by (ONNX sha256, set sha256, method). The Q/DQ model.int8.onnx comes from `build --int8`.
    """
    from resvit_export.errors import OutputDirError
    from resvit_export.precision.workflow import CalibrateOptions, calibrate_to_dir

    started = time.monotonic()
    if output is not None and output.exists() and not output.is_dir():
        raise OutputDirError(f"output path {output} exists and is not a directory; choose another -o")
    opts = CalibrateOptions(target=target, calib_data=calib_data, calib_synthetic=calib_synthetic,
                            resolutions=calib_resolutions, method=calib_method, batch_size=calib_batch, limit=limit,
                            seed=seed, output=output, cache_dir=cache_dir, trt_version=trt_version,
                            allow_unverified=allow_unverified)
    out = calibrate_to_dir(opts)
    cset, ranges = out.calibration_set, out.ranges
    click.echo(f"calibration set {out.output}: {cset.count} images x {len(cset.resolutions)} resolutions "
               f"({', '.join(f'{h}x{w}' for h, w in cset.resolutions)}), sha256 {cset.sha256[:12]}", err=True)
    click.echo(f"ranges for {len(ranges.ranges)} tensors ({calib_method}): "
               f"{'cache hit' if ranges.cache_hit else f'computed in {ranges.seconds:.1f}s'} -> {ranges.cache_path}",
               err=True)
    final_line(True, "calibrate", started,
               f"{len(ranges.ranges)} tensors, {calib_method}, {'cache hit' if ranges.cache_hit else 'cache miss'}"
               f" | {out.trt_cache}")
