"""``resvit-export plan``: TensorRT optimization profiles, memory estimates and trtexec lines (no TensorRT needed)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .common import final_line, handle_errors
from .options import OverrideType, device_options, force_option, precision_option, profile_options, with_batch


@click.command()
@click.argument("model")
@profile_options
@precision_option("Precision the engine is planned for (selects the ONNX in the trtexec lines).")
@device_options
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
@click.option("--set", "overrides", multiple=True, type=OverrideType(),
              help="Model config override, repeatable; checked against the config's invariants.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Write plan.json and trtexec.sh into this directory.")
@force_option("Overwrite an existing plan.json/trtexec.sh.")
@handle_errors
def plan(model, profiles, batch, precision, device, memory_budget, assume_fused_mha, no_split, layout, onnx_name,
         workspace_mib, opt_level, overrides, as_json, out_dir, force):
    """Plan TensorRT optimization profiles for MODEL over --profile ranges, estimate memory per profile,
    warn when a profile will not fit the device, and print trtexec lines (TensorRT 10 and 11 syntax)."""
    import json

    from resvit_export.errors import OutputDirError, UsageError
    from resvit_export.io import write_json_atomic
    from resvit_export.layout import BuildLayout
    from resvit_export.preflight import prepare_model
    from resvit_export.trt.planner import format_plan, plan_profiles
    from resvit_export.trt.trtexec import trtexec_commands, write_trtexec_script

    started = time.monotonic()
    files = BuildLayout(out_dir) if out_dir is not None else None
    if files is not None:  # refuse before planning: a file in the way, or plan files without --force
        if out_dir.exists() and not out_dir.is_dir():
            raise OutputDirError(f"output path {out_dir} exists and is not a directory; choose another -o")
        for path in (files.plan, files.trtexec_script):
            if path.exists() and not force:
                raise OutputDirError(f"{path} exists; pass --force to overwrite it")
    parsed = with_batch(profiles, batch)
    m = prepare_model(model, dict(overrides), seed=0, weights=None, profiles=parsed, fit_to_profiles=False).model
    the_plan = plan_profiles(m, parsed, None, precision, device=device, memory_budget=memory_budget,
                             fused_mha=assume_fused_mha, split=not no_split, layout=layout)
    onnx = onnx_name or BuildLayout(".").precision_onnx(precision).name
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
    if files is not None:
        write_json_atomic(files.plan, the_plan.to_dict())
        write_trtexec_script(the_plan, onnx, files.trtexec_script, **kwargs)
        if not as_json:
            click.echo(f"wrote {files.plan}, {files.trtexec_script}")
    detail = f"{len(the_plan.profiles)} profile(s)"
    if the_plan.warnings:
        detail += f", {len(the_plan.warnings)} warning(s): a profile does not fit"
    if not as_json:
        final_line(True, "plan", started, detail)
