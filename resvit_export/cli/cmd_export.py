"""``resvit-export export``: one dynamic-axis ONNX covering every --profile, plus export.json and status.json."""

from __future__ import annotations

from pathlib import Path

import click

from .common import final_line, handle_errors
from .options import compose, force_option, model_options, profile_options, with_batch


def _console():
    """A rich console on a duplicate of the terminal's stderr, so the spinner stays visible while the export
    captures fds 1/2 (and stays silent when stderr is not a terminal)."""
    import os
    import sys

    from rich.console import Console

    stream = sys.stderr
    try:
        if stream.isatty():
            stream = os.fdopen(os.dup(stream.fileno()), "w", buffering=1)
    except (AttributeError, OSError, ValueError):
        pass
    return Console(file=stream, stderr=True)


@click.command()
@click.argument("model_name", metavar="MODEL")
@compose(profile_options, model_options)
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
              help="Output directory (must be empty unless --force).")
@click.option("--opset", default=18, show_default=True, type=click.IntRange(17, 23), help="ONNX opset.")
@click.option("--packed", is_flag=True, help="NaViT only: export the packed-sequence graph (PackedNaViT).")
@force_option("Replace an earlier resvit-export output in the directory (it is kept until this export PASSES).")
@click.option("-v", "--verbose", is_flag=True, help="Show the exporter's own output.")
@handle_errors
def export(model_name, profiles, batch, weights, overrides, seed, output, opset, packed, force, verbose):
    """Export MODEL to ONNX with dynamic batch/height/width and prove the range was not narrowed.

    \b
    Writes DIR/model.onnx (+ model.onnx.data for >1.8 GB), DIR/export.json, and DIR/status.json last.
    Example: resvit-export export deit_s --profile 224-1792 --batch 1-8@1 -o out/deit_s
    """
    import time

    from resvit_export.export.workflow import ExportOptions, export_to_dir

    started = time.monotonic()
    opts = ExportOptions(model=model_name, profiles=with_batch(profiles, batch), out_dir=output, opset=opset,
                         weights=weights, overrides=dict(overrides), seed=seed, packed=packed, force=force,
                         verbose=verbose)
    console = _console()
    with console.status("checking options") as spinner:
        try:
            outcome = export_to_dir(opts, progress=spinner.update)
        except Exception as err:
            if getattr(err, "status_path", None) is not None:
                final_line(False, "export", started, f"see {err.status_path}")
            raise
    result = outcome.result
    dims = ", ".join(f"{k} {v[0]}-{'inf' if v[1] is None else v[1]}" for k, v in result.range_constraints.items())
    click.echo(f"wrote {result.onnx_path} ({result.onnx_path.stat().st_size / 1e6:.1f} MB) and export.json; "
               f"dynamic: {dims}")
    final_line(True, "export", started, f"{model_name} -> {result.onnx_path}")
