"""``resvit-export convert``: a timm / official checkpoint (safetensors) -> weights for a registered model."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .common import final_line, handle_errors


@click.command()
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("model")
@click.option("-o", "--output", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Weights file to write (.safetensors), then pass it to build/export with --weights.")
@click.option("--from", "source_format", default=None,
              help="Source layout: timm-vit, resformer-official or timm-naflexvit (default: detected from the keys).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Config override for the target model (e.g. --set num_heads=12 for a width the model lacks).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@handle_errors
def convert(source, model, out_path, source_format, overrides, force):
    """Convert SOURCE (a safetensors state dict from timm or the official ResFormer code) into weights for
    MODEL (deit_*, resformer_*, navit_*). Pickled .pth files are refused with the command that converts them
    to safetensors; variants that do not map (distilled DeiT, DeiT-III/LayerScale, register tokens) are refused
    by name. The result is proven to load into MODEL before it is written."""
    from resvit_export.convert import convert_checkpoint
    from resvit_export.models import parse_overrides

    started = time.monotonic()
    result = convert_checkpoint(source, out_path, model, source_format=source_format,
                                overrides=parse_overrides(overrides), force=force)
    click.echo(f"wrote {result.path}: {result.tensors} tensors from a {result.source_format} checkpoint")
    flags = f" {result.set_flags}" if result.overrides else ""
    click.echo(f"use it with: resvit-export build {model} --weights {result.path}{flags}")
    final_line(True, "convert", started, f"{model} <- {source.name}")
