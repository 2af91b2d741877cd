"""``resvit-export export``: one dynamic-axis ONNX covering every --profile, plus export.json and status.json."""

from __future__ import annotations

import click

from .common import handle_errors


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
@click.option("--profile", "profiles", multiple=True, default=("224-1792",), show_default=True,
              help="Resolution range; repeatable (the graph covers the union: min of mins, max of maxes).")
@click.option("--batch", default=None, help="Batch range MIN-MAX@OPT recorded with the profiles (e.g. 1-8@1).")
@click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False),
              help="Output directory (must be empty unless --force).")
@click.option("--opset", default=18, show_default=True, type=click.IntRange(17, 23), help="ONNX opset.")
@click.option("--weights", default=None, type=click.Path(dir_okay=False),
              help="A .safetensors checkpoint (default: the seeded random init).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Model config override; repeatable.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random init.")
@click.option("--packed", is_flag=True, help="NaViT only: export the packed-sequence graph (PackedNaViT).")
@click.option("--force", is_flag=True, help="Overwrite a non-empty output directory.")
@click.option("-v", "--verbose", is_flag=True, help="Show the exporter's own output.")
@handle_errors
def export(model_name, profiles, batch, output, opset, weights, overrides, seed, packed, force, verbose):
    """Export MODEL to ONNX with dynamic batch/height/width and prove the range was not narrowed.

    \b
    Writes DIR/model.onnx (+ model.onnx.data for >1.8 GB), DIR/export.json, and DIR/status.json last.
    Example: resvit-export export deit_s --profile 224-1792 --batch 1-8@1 -o out/deit_s
    """
    import time
    from pathlib import Path

    started = time.monotonic()
    from resvit_export.errors import UsageError
    from resvit_export.export import build_record, export_onnx, export_packed_navit, union_profile, write_record
    from resvit_export.io import prepare_output_dir, write_json_atomic
    from resvit_export.models import create_model, get_entry, load_weights, parse_overrides
    from resvit_export.profiles import parse_batch, parse_profile

    # Validate everything before the output directory is touched.
    batch_range = parse_batch(batch)
    parsed = [parse_profile(p, batch_range) for p in profiles]
    entry = get_entry(model_name)
    if packed and entry.family != "navit":
        raise UsageError(f"--packed is only for NaViT models; {model_name} is a {entry.family} model")
    override_map = parse_overrides(overrides)
    if not packed:  # the ATM stage count follows the profile (see pipeline.deployment_overrides)
        from resvit_export.pipeline import deployment_overrides

        override_map = deployment_overrides(model_name, parsed, override_map)
    model = create_model(model_name, seed=seed, **override_map)
    for prof in parsed:
        prof.check_against(model.size_rule)
    union = union_profile(parsed)
    if weights:
        load_weights(model, weights)

    out = prepare_output_dir(output, force=force)
    onnx_path = Path(out) / "model.onnx"
    console = _console()
    status = {"command": "export", "status": "FAILED", "model": model_name, "profile": str(union)}
    try:
        with console.status(f"exporting {model_name} ({'packed' if packed else union}) to ONNX opset {opset}..."):
            if packed:
                result = export_packed_navit(model, onnx_path, opset, verbose=verbose)
            else:
                result = export_onnx(model, onnx_path, union, opset, verbose=verbose)
        record = build_record(result, model=model_name, family=entry.family, overrides=override_map, seed=seed,
                              weights=weights, profiles=parsed, entry="packed" if packed else "image",
                              extra={"union_profile": union.to_dict()})
        write_record(out, record)
    except BaseException as err:
        status["error"] = f"{type(err).__name__}: {err}"
        status["seconds"] = round(time.monotonic() - started, 3)
        write_json_atomic(Path(out) / "status.json", status)
        raise
    rc = result.range_constraints
    dims = ", ".join(f"{k} {v[0]}-{'inf' if v[1] is None else v[1]}" for k, v in rc.items())
    status.update({"status": "PASSED", "onnx": onnx_path.name, "onnx_sha256": result.onnx_sha256,
                   "export_seconds": round(result.seconds, 3), "range_constraints": rc,
                   "seconds": round(time.monotonic() - started, 3)})
    write_json_atomic(Path(out) / "status.json", status)  # last: its presence means the directory is complete
    click.echo(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB) and export.json; dynamic: {dims}")
    from .common import final_line

    final_line(True, "export", started, f"{model_name} -> {onnx_path}")
