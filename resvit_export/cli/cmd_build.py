"""``resvit-export build``: the whole pipeline, thin over resvit_export.pipeline.build."""

from __future__ import annotations

import time
from pathlib import Path

import click

from resvit_export.pipeline import CPU_TARGET

from .common import final_line, handle_errors
from .options import (RESOLUTIONS, calibration_options, compose, device_options, force_option, model_options,
                      passes_option, profile_options, target_option, tolerance_options, tolerance_overrides,
                      with_batch)

_DEFAULT_OUT = "resvit-build"


def _dir_name(model: str) -> str:
    """A default output folder name for MODEL (a module:factory or file path made one path component)."""
    return model.replace(":", ".").replace("/", "_").replace("\\", "_")


@click.command()
@click.argument("model", required=False)
@click.option("--model", "model_opt", default=None, metavar="NAME|MODULE:FACTORY",
              help="The model, as the MODEL argument: a registry name, or pkg.module:factory / path/file.py:factory "
                   "returning an nn.Module that meets the model contract (README 'Bring your own model').")
@compose(profile_options, model_options)
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path), default=None,
              help=f"Output directory (default ./{_DEFAULT_OUT}/MODEL).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default=None,
              help="Deployed precision (default fp32). FP16/INT8 are written into the ONNX (TensorRT 11 needs that).")
@click.option("--fp16", "fp16_flag", is_flag=True, help="Same as --precision fp16.")
@click.option("--int8", "int8_flag", is_flag=True, help="Same as --precision int8.")
@click.option("--keep-fp32", multiple=True, metavar="NAME|OP", help="Node names or op types to keep in FP32 (repeatable).")
@target_option("TensorRT ONNX parser to build for (repeatable); `cpu`: also write cpu/, the graphs ONNX Runtime "
               "runs fastest on this CPU (fp32 and INT8, measured and proven); `cpu` alone runs no TensorRT step.",
               extra=(CPU_TARGET,))
@click.option("--opset", type=click.IntRange(17, 23), default=18, show_default=True)
@click.option("--no-rewrite", is_flag=True, help="Skip graph rewriting (debugging).")
@passes_option
@click.option("--resolutions", type=RESOLUTIONS, default=None,
              help="Extra resolutions for the parity matrix (inside a profile).")
@compose(tolerance_options, device_options, calibration_options)
@click.option("--engine", type=click.Choice(["auto", "skip"]), default="auto", show_default=True,
              help="auto: build the engine when TensorRT and a GPU exist, otherwise defer it to the target.")
@force_option("Replace an earlier resvit-export output in the directory (it is kept until this build PASSES).")
@handle_errors
def build(model, model_opt, profiles, batch, weights, overrides, seed, out_dir, precision, fp16_flag, int8_flag,
          keep_fp32, targets, opset, no_rewrite, only_passes, resolutions, atol, rtol, cos_min, top1_min, device,
          memory_budget, calib_data, calib_synthetic, calib_method, engine, force):
    """Export, rewrite, lint, validate and (where TensorRT exists) build engines for MODEL.

    With no MODEL the default (vitar_s) is used, so `resvit-export build --profile 224-1792` works as is.
    MODEL may also be pkg.module:factory or path/file.py:factory (a model defined outside the package).
    Exits 0 with the engine step DEFERRED on machines without TensorRT; non-zero on any failed check.
    """
    from rich.console import Console
    from rich.markup import escape  # step details name cases like "[gaussian]", which rich would eat as markup

    from resvit_export.pipeline import DEFAULT_MODEL, BuildOptions
    from resvit_export.pipeline import build as run_build
    from resvit_export.precision.policy import resolve_precision

    started = time.monotonic()
    if model and model_opt and model != model_opt:
        raise click.UsageError(f"two models given: MODEL {model} and --model {model_opt}; pass one")
    model = model or model_opt or DEFAULT_MODEL
    opts = BuildOptions(
        profiles=with_batch(profiles, batch), out_dir=out_dir or Path(_DEFAULT_OUT) / _dir_name(model), model=model,
        precision=resolve_precision(precision, fp16_flag, int8_flag), keep_fp32=list(keep_fp32) or None,
        opset=opset, weights=weights, overrides=dict(overrides), seed=seed, targets=list(targets),
        rewrite=not no_rewrite, only_passes=list(only_passes) or None,
        tolerances=tolerance_overrides(atol, rtol, cos_min, top1_min), extra_resolutions=resolutions or [],
        device=device, memory_budget=memory_budget, calib_data=calib_data, calib_synthetic=calib_synthetic,
        calib_method=calib_method, engine=engine, force=force)
    console = Console(stderr=True)
    header = [f"resvit-export build {model} --profile {' --profile '.join(map(str, opts.profiles))} -> {opts.out_dir}"]
    with console.status("checking options") as status:
        def notify(name, rec):
            if header:  # only once the options passed: a refused build prints its one error line, nothing else
                click.echo(header.pop())
            if rec is None:
                status.update(f"[bold]{name}[/bold] ...")
            else:
                colour = {"PASSED": "green", "DEFERRED": "yellow", "SKIPPED": "yellow"}.get(rec.status, "red")
                console.print(f"[{colour}]{rec.status:8}[/{colour}] {name:15} {rec.seconds:6.1f}s  {escape(rec.detail)}")

        try:
            result = run_build(opts, notify=notify)
        except Exception as err:
            where = getattr(err, "status_path", None)
            if where is not None:  # the build ran: say where its FAILED status is (refusals print one line)
                final_line(False, "build", started, f"see {where}")
            raise
    deferred = [s.name for s in result.steps if s.status == "DEFERRED"]
    detail = f"{result.out_dir}" + (f"; deferred: {', '.join(deferred)}" if deferred else "")
    final_line(True, "build", started, detail)
