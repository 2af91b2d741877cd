#!/usr/bin/env python
"""Top-1 agreement of FP16 and INT8 ONNX graphs with PyTorch fp32 on held-out images, for the trained runs.

    python training/precision_agreement.py [RUN ...] [--n 200]     # heavy: export + quantise per run

A measurement, not a gate (the gates belong to the precision step): each run is exported (profile 48-512), its
FP16 graph made with the project's policy and its INT8 Q/DQ graph calibrated on TRAINING-stream scenes (32 per
size at 64, 224 and 512 px, never the held-out ones); then per size: held-out accuracy of each runtime and
top-1 agreement with eager fp32.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

SIZES = ((64, 64), (224, 224), (384, 384), (512, 256))
CALIB_SIZES = ((64, 64), (224, 224), (512, 512))


@click.command()
@click.argument("names", nargs=-1)
@click.option("--n", type=click.IntRange(min=1), default=200, show_default=True, help="held-out scenes per size")
def main(names, n):
    from resvit_export.export.onnx_export import export_onnx
    from resvit_export.precision.calibration import CalibrationSet
    from resvit_export.precision.fp16 import make_fp16_onnx
    from resvit_export.precision.int8 import make_int8_onnx
    from resvit_export.profiles import parse_profile
    from resvit_export.reference.checkpoints import REFERENCE_MODELS, reference_model
    from resvit_export.reference.evaluate import heldout_accuracy, heldout_agreement, onnx_runner, torch_runner
    from resvit_export.reference.task import SceneStream, draw_scenes, render_batch, scene_rng

    unknown = [x for x in names if x not in REFERENCE_MODELS]
    if unknown:
        raise click.UsageError(f"unknown run {', '.join(unknown)}; choose from {', '.join(REFERENCE_MODELS)}")
    scenes = draw_scenes(scene_rng(SceneStream.TRAIN, 99, 0, 0), 32)  # a key no training step uses (seed 99)
    calib = CalibrationSet("shapes-train", {hw: render_batch(scenes, *hw) for hw in CALIB_SIZES})
    click.echo("| run | size | acc fp32 | acc fp16 | acc int8 | agree fp16 | agree int8 |")
    click.echo("|---|---|--:|--:|--:|--:|--:|")
    for name in names or REFERENCE_MODELS:
        model = reference_model(name, max_side=512)
        with tempfile.TemporaryDirectory(prefix="resvit-agree-") as tmp:
            src = Path(tmp) / "model.onnx"
            export_onnx(model, src, parse_profile("48-512"))
            make_fp16_onnx(src, Path(tmp) / "model.fp16.onnx", verify=False)
            make_int8_onnx(src, Path(tmp) / "model.int8.onnx", calib, cache_dir=None, verify=False)
            eager = torch_runner(model)
            fp16, int8 = onnx_runner(Path(tmp) / "model.fp16.onnx"), onnx_runner(Path(tmp) / "model.int8.onnx")
            for h, w in SIZES:
                acc = [heldout_accuracy(r, h, w, n).value for r in (eager, fp16, int8)]
                agree = [heldout_agreement(eager, r, h, w, n).value for r in (fp16, int8)]
                click.echo(f"| {name} | {h}×{w} | " + " | ".join(f"{100 * v:.1f}" for v in acc + agree) + " |")


if __name__ == "__main__":
    sys.exit(main())
