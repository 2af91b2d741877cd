"""``resvit-export plan``: TensorRT optimization profiles, memory estimates and trtexec lines (no TensorRT needed)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .common import final_line, handle_errors


@click.command()
@click.argument("model")
@click.option("--profile", "profiles", multiple=True, metavar="RANGE",
              help="Resolution range, repeatable: 224-1792, 224x320-1792x1024, 224-1792@512 or trtexec "
                   "'x:1x3x224x224,x:1x3x512x512,x:1x3x1792x1792'. Default 224-1792.")
@click.option("--batch", default=None, metavar="MIN-MAX@OPT", help="Batch range, e.g. 1-8@1 (default 1).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp16", show_default=True)
@click.option("--device", default=None,
              type=click.Choice(["orin-nano", "orin-nx-16", "agx-orin-32", "agx-orin-64", "thor"]),
              help="Target preset; its budget is 75% of the board's unified memory.")
@click.option("--memory-budget", default=None, metavar="SIZE", help="Memory budget, e.g. 6G (overrides --device).")
@click.option("--assume-fused-mha", is_flag=True,
              help="Assume TensorRT fuses attention (no N^2 score buffers). Default: not fused (conservative).")
@click.option("--no-split", is_flag=True, help="Keep each --profile as one TensorRT profile (no token bands).")
@click.option("--layout", type=click.Choice(["nested", "disjoint"]), default="nested", show_default=True,
              help="nested: every band starts at the range's min (covers the whole box); disjoint: [cut, cut].")
@click.option("--onnx", "onnx_name", default=None, metavar="FILE",
              help="ONNX for the trtexec lines (default model.rewritten.onnx for fp32, model.<precision>.onnx).")
@click.option("--workspace", "workspace_mib", type=click.IntRange(1), default=None, metavar="MIB",
              help="--memPoolSize=workspace:<MIB>M in the trtexec lines.")
@click.option("--opt-level", type=click.IntRange(0, 5), default=None, help="--builderOptimizationLevel.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Model config override (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write plan.json and trtexec.sh into this directory.")
@click.option("--force", is_flag=True, help="Overwrite an existing plan.json/trtexec.sh.")
@handle_errors
def plan(model, profiles, batch, precision, device, memory_budget, assume_fused_mha, no_split, layout, onnx_name,
         workspace_mib, opt_level, overrides, as_json, out_dir, force):
    """Plan TensorRT optimization profiles for MODEL over --profile ranges, estimate memory per profile,
    warn when a profile will not fit the device, and print trtexec lines (TensorRT 10 and 11 syntax)."""
    import json

    from resvit_export.errors import OutputDirError, UsageError
    from resvit_export.io import write_json_atomic
    from resvit_export.models import create_model, parse_overrides
    from resvit_export.profiles import parse_batch, parse_profile
    from resvit_export.trt.planner import format_plan, plan_profiles
    from resvit_export.trt.trtexec import trtexec_commands, write_trtexec_script

    started = time.monotonic()
    batch_range = parse_batch(batch)
    parsed = [parse_profile(p, batch_range) for p in (profiles or ("224-1792",))]
    m = create_model(model, **parse_overrides(overrides))
    the_plan = plan_profiles(m, parsed, batch_range, precision, device=device, memory_budget=memory_budget,
                             fused_mha=assume_fused_mha, split=not no_split, layout=layout)
    onnx = onnx_name or ("model.rewritten.onnx" if precision == "fp32" else f"model.{precision}.onnx")
    kwargs = {"workspace_mib": workspace_mib, "builder_optimization_level": opt_level}
    lines = {}
    for major in (10, 11):
        try:
            lines[major] = trtexec_commands(the_plan, onnx, major, **kwargs)
        except UsageError as err:
            lines[major] = [f"# not possible on TensorRT {major}: {err}"]
    if as_json:
        click.echo(json.dumps({**the_plan.to_dict(), "trtexec": {str(k): v for k, v in lines.items()}}, indent=2))
    else:
        for line in format_plan(the_plan):
            click.echo(line)
        for major in (10, 11):
            click.echo(f"trtexec (TensorRT {major}):")
            for line in lines[major]:
                click.echo(f"  {line}")
    written = []
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in ("plan.json", "trtexec.sh"):
            if (out_dir / name).exists() and not force:
                raise OutputDirError(f"{out_dir / name} exists; pass --force to overwrite it")
        write_json_atomic(out_dir / "plan.json", the_plan.to_dict())
        write_trtexec_script(the_plan, onnx, out_dir / "trtexec.sh", **kwargs)
        written = [str(out_dir / "plan.json"), str(out_dir / "trtexec.sh")]
        if not as_json:
            click.echo(f"wrote {', '.join(written)}")
    detail = f"{len(the_plan.profiles)} profile(s)"
    if the_plan.warnings:
        detail += f", {len(the_plan.warnings)} warning(s): a profile does not fit"
    if not as_json:
        final_line(True, "plan", started, detail)
