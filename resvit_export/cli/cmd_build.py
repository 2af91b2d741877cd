"""``resvit-export build``: the whole pipeline, thin over resvit_export.pipeline.build."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .common import final_line, handle_errors

_DEFAULT_OUT = "resvit-build"


def _hw_list(text: str | None) -> list[tuple[int, int]]:
    from resvit_export.errors import UsageError

    out = []
    for item in filter(None, (text or "").replace(" ", "").split(",")):
        h, _, w = item.lower().partition("x")
        if not h.isdigit() or (w and not w.isdigit()):
            raise UsageError(f"bad --resolutions entry {item!r}; use HxW or S, comma-separated (e.g. 320x1024,97x301)")
        out.append((int(h), int(w or h)))
    return out


@click.command()
@click.argument("model", required=False)
@click.option("--profile", "profiles", multiple=True, metavar="RANGE",
              help="Resolution range, repeatable: 224-1792, 224x320-1792x1024, 224-1792@512, or trtexec "
                   "'x:1x3x224x224,x:1x3x512x512,x:1x3x1792x1792'. Default 224-1792.")
@click.option("--batch", default=None, metavar="MIN-MAX@OPT", help="Batch range for the engine, e.g. 1-8@1 (default 1).")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Output directory (default ./{_DEFAULT_OUT}/MODEL).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default=None,
              help="Deployed precision (default fp32). FP16/INT8 are written into the ONNX (TensorRT 11 needs that).")
@click.option("--fp16", "fp16_flag", is_flag=True, help="Same as --precision fp16.")
@click.option("--int8", "int8_flag", is_flag=True, help="Same as --precision int8.")
@click.option("--keep-fp32", multiple=True, metavar="NAME|OP", help="Node names or op types to keep in FP32 (repeatable).")
@click.option("--target", "targets", multiple=True,
              type=click.Choice(["jetpack5", "jetpack6", "jetpack7", "trt10", "trt11"]),
              help="TensorRT parser(s) to lint against (default jetpack6 = TensorRT 10.3).")
@click.option("--opset", type=click.IntRange(17, 23), default=18, show_default=True)
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="safetensors checkpoint (default: seeded random init).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Model config override (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random init and test inputs.")
@click.option("--no-rewrite", is_flag=True, help="Skip graph rewriting (debugging).")
@click.option("--only", "only_passes", multiple=True, metavar="PASS", help="Run only these rewrite passes (debugging).")
@click.option("--resolutions", default=None, metavar="HxW,...", help="Extra resolutions for the parity matrix.")
@click.option("--atol", type=float, default=None, help="Override the parity max-abs tolerance.")
@click.option("--cos-min", type=float, default=None, help="Override the parity minimum cosine similarity.")
@click.option("--top1-min", type=float, default=None, help="Override the parity minimum top-1 agreement.")
@click.option("--device", default=None, help="Memory preset: orin-nano, orin-nx-16, agx-orin-32, agx-orin-64, thor.")
@click.option("--memory-budget", default=None, metavar="SIZE", help="Activation memory budget, e.g. 6G.")
@click.option("--calib-data", type=click.Path(exists=True, path_type=Path), default=None,
              help="INT8 calibration images (folder) or arrays (.npz).")
@click.option("--calib-synthetic", type=click.IntRange(1, 4096), default=None,
              help="INT8: use N synthetic real-image-like calibration images per resolution.")
@click.option("--calib-method", type=click.Choice(["entropy", "minmax", "percentile"]), default="entropy",
              show_default=True)
@click.option("--engine", type=click.Choice(["auto", "skip"]), default="auto", show_default=True,
              help="auto: build the engine when TensorRT and a GPU exist, otherwise defer it to the target.")
@click.option("--force", is_flag=True, help="Overwrite a non-empty output directory.")
@handle_errors
def build(model, profiles, batch, out_dir, precision, fp16_flag, int8_flag, keep_fp32, targets, opset, weights,
          overrides, seed, no_rewrite, only_passes, resolutions, atol, cos_min, top1_min, device, memory_budget,
          calib_data, calib_synthetic, calib_method, engine, force):
    """Export, rewrite, lint, validate and (where TensorRT exists) build engines for MODEL.

    With no MODEL the default (vitar_s) is used, so `resvit-export build --profile 224-1792` works as is.
    Exits 0 with the engine step DEFERRED on machines without TensorRT; non-zero on any failed check.
    """
    from rich.console import Console

    from resvit_export.models import parse_overrides
    from resvit_export.pipeline import DEFAULT_MODEL, BuildOptions
    from resvit_export.pipeline import build as run_build
    from resvit_export.precision.policy import resolve_precision
    from resvit_export.profiles import parse_batch, parse_profile

    started = time.monotonic()
    model = model or DEFAULT_MODEL
    batch_range = parse_batch(batch)
    parsed = [parse_profile(p, batch_range) for p in (profiles or ("224-1792",))]
    opts = BuildOptions(
        profiles=parsed, out_dir=out_dir or Path(_DEFAULT_OUT) / model, model=model, batch=batch_range,
        precision=resolve_precision(precision, fp16_flag, int8_flag), keep_fp32=list(keep_fp32) or None,
        opset=opset, weights=weights, overrides=parse_overrides(overrides), seed=seed,
        targets=list(targets) or ["jetpack6"], rewrite=not no_rewrite, only_passes=list(only_passes) or None,
        tolerances=_tolerances(atol, cos_min, top1_min), extra_resolutions=_hw_list(resolutions), device=device,
        memory_budget=memory_budget, calib_data=calib_data, calib_synthetic=calib_synthetic,
        calib_method=calib_method, engine=engine, force=force)
    console = Console(stderr=True)
    click.echo(f"resvit-export build {model} --profile {' --profile '.join(map(str, parsed))} -> {opts.out_dir}")
    with console.status("starting") as status:
        def notify(name, rec):
            if rec is None:
                status.update(f"[bold]{name}[/bold] ...")
            else:
                colour = {"PASSED": "green", "DEFERRED": "yellow", "SKIPPED": "yellow"}.get(rec.status, "red")
                console.print(f"[{colour}]{rec.status:8}[/{colour}] {name:15} {rec.seconds:6.1f}s  {rec.detail}")

        try:
            result = run_build(opts, notify=notify)
        except Exception:
            status_file = opts.out_dir / "status.json"
            final_line(False, "build", started, f"see {status_file}" if status_file.is_file() else "")
            raise
    deferred = [s.name for s in result.steps if s.status == "DEFERRED"]
    detail = f"{opts.out_dir}" + (f"; deferred: {', '.join(deferred)}" if deferred else "")
    final_line(True, "build", started, detail)


def _tolerances(atol, cos_min, top1_min):
    if atol is None and cos_min is None and top1_min is None:
        return None
    return {"atol": atol, "cos_min": cos_min, "top1_min": top1_min}
