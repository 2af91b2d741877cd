#!/usr/bin/env python
"""Which quantized nodes cost INT8 its top-1 agreement on the trained tiny models, measured on held-out images.

    python training/int8_sensitivity.py roles RUN [RUN ...] [--n 200]       # by node role, both directions
    python training/int8_sensitivity.py nodes RUN [--n 200]                 # leave-one-node-out, per node
    python training/int8_sensitivity.py calib RUN [RUN ...] [--n 200]       # method x calibration data
    python training/int8_sensitivity.py policies [RUN ...] [--n 200]        # each INT8 policy, every run

A measurement, not a gate. Each run is exported (profile 48-512) and rewritten as ``build`` does; ranges are
calibrated once per (data, method) over 32 images at 64, 224 and 512 px. Each variant is a Q/DQ graph made by
``precision.int8.make_int8_onnx`` with some nodes excluded; its top-1 agreement with eager fp32 is measured on
the first N held-out scenes at every size in SIZES. Roles (``precision.int8.node_roles``):

* ``linear``: MatMul/Gemm with a weight (qkv, proj, fc1, fc2, head)
* ``attn_scores``: the Q·Kᵀ MatMul (both inputs are activations)
* ``attn_values``: the softmax(·)·V MatMul (both inputs are activations; one is a probability row)
* ``conv``: patch embedding and the other convolutions
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

SIZES = ((64, 64), (224, 224), (384, 384), (512, 256))
CALIB_SIZES = ((64, 64), (224, 224), (512, 512))
CALIB_N = 32


def _export(name: str, tmp: Path) -> Path:
    from resvit_export.export.onnx_export import export_onnx
    from resvit_export.graph.rewrite import RewriteContext, apply_rewrites
    from resvit_export.profiles import parse_profile
    from resvit_export.reference.checkpoints import reference_model

    model = reference_model(name, max_side=512)
    profile = parse_profile("48-512")
    raw = export_onnx(model, tmp / "model.onnx", profile).onnx_path
    apply_rewrites(raw, tmp / "model.rewritten.onnx", RewriteContext([profile], patch_size=16))
    return tmp / "model.rewritten.onnx"


def _calibration(kind: str):
    from resvit_export.precision.calibration import CalibrationSet
    from resvit_export.reference.task import SceneStream, draw_scenes, render_batch, scene_rng

    if kind == "scenes":  # the task's own training distribution (a key no training step uses: seed 99)
        scenes = draw_scenes(scene_rng(SceneStream.TRAIN, 99, 0, 0), CALIB_N)
        return CalibrationSet("shapes-train", {hw: render_batch(scenes, *hw) for hw in CALIB_SIZES})
    if kind == "photos":
        from resvit_export.data.photos import builtin_photos

        return CalibrationSet("builtin-photos", {hw: builtin_photos(*hw) for hw in CALIB_SIZES})
    if kind == "synthetic":
        return CalibrationSet.synthetic(CALIB_N, CALIB_SIZES, seed=0)
    raise click.UsageError(f"unknown calibration data {kind!r}")


def _agreement(name: str, onnx_path: Path, n: int) -> list[float]:
    from resvit_export.reference.checkpoints import reference_model
    from resvit_export.reference.evaluate import heldout_agreement, onnx_runner, torch_runner

    eager, graph = torch_runner(reference_model(name, max_side=512)), onnx_runner(onnx_path, threads=2)
    return [heldout_agreement(eager, graph, h, w, n).value for h, w in SIZES]


def _row(label: str, values: list[float]) -> str:
    return f"| {label} | " + " | ".join(f"{100 * v:.1f}" for v in values) + " |"


def _variant(src, dst, calib, exclude, method="entropy", **kw):
    from resvit_export.precision.int8 import make_int8_onnx

    return make_int8_onnx(src, dst, calib, method=method, keep_fp32=list(exclude) or None, verify=False,
                          cache_dir=dst.parent / "cache", **kw)


HEADER = "| variant | " + " | ".join(f"{h}×{w}" for h, w in SIZES) + " |\n|---|" + "--:|" * len(SIZES)


@click.group()
def main():
    pass


@main.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--n", type=click.IntRange(min=1), default=200, show_default=True)
def roles(names, n):
    """Quantize everything except one role, and only one role; agreement per size."""
    from resvit_export.precision.int8 import node_roles

    calib = _calibration("scenes")
    for name in names:
        with tempfile.TemporaryDirectory(prefix="resvit-sens-") as tmp:
            tmp = Path(tmp)
            src = _export(name, tmp)
            by_role = node_roles(src)
            click.echo(f"\n{name}: " + ", ".join(f"{r} {len(v)}" for r, v in by_role.items()))
            click.echo(HEADER)
            everything = [x for v in by_role.values() for x in v]
            click.echo(_row("all quantized (old policy)", _agreement(
                name, _variant(src, tmp / "all.onnx", calib, [], policy="all").path, n)))
            for role, nodes in by_role.items():
                if not nodes:
                    continue
                out = _variant(src, tmp / f"no-{role}.onnx", calib, nodes, policy="all")
                click.echo(_row(f"all but {role}", _agreement(name, Path(out.path), n)))
                rest = [x for x in everything if x not in nodes]
                if rest:
                    only = _variant(src, tmp / f"only-{role}.onnx", calib, rest, policy="all")
                    click.echo(_row(f"only {role}", _agreement(name, Path(only.path), n)))


@main.command()
@click.argument("name")
@click.option("--n", type=click.IntRange(min=1), default=200, show_default=True)
def nodes(name, n):
    """Leave one node out (float) of the all-quantized graph: the agreement each node costs."""
    from resvit_export.precision.int8 import node_roles

    calib = _calibration("scenes")
    with tempfile.TemporaryDirectory(prefix="resvit-sens-") as tmp:
        tmp = Path(tmp)
        src = _export(name, tmp)
        click.echo(HEADER)
        click.echo(_row("all quantized", _agreement(name, _variant(src, tmp / "all.onnx", calib, [],
                                                                    policy="all").path, n)))
        for role, names_ in node_roles(src).items():
            for node in names_:
                out = _variant(src, tmp / "one.onnx", calib, [node], policy="all")
                click.echo(_row(f"float {node} ({role})", _agreement(name, Path(out.path), n)))


@main.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--n", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--policy", default=None, help="INT8 policy (default: precision.int8.DEFAULT_INT8_POLICY)")
def calib(names, n, policy):
    """Calibration method x calibration data under one policy."""
    from resvit_export.precision.int8 import DEFAULT_INT8_POLICY

    policy = policy or DEFAULT_INT8_POLICY
    for name in names:
        with tempfile.TemporaryDirectory(prefix="resvit-sens-") as tmp:
            tmp = Path(tmp)
            src = _export(name, tmp)
            click.echo(f"\n{name} (policy {policy})\n" + HEADER)
            for data in ("scenes", "photos", "synthetic"):
                cset = _calibration(data)
                for method in ("entropy", "minmax", "percentile"):
                    out = _variant(src, tmp / f"{data}-{method}.onnx", cset, [], method=method, policy=policy)
                    click.echo(_row(f"{data}, {method}", _agreement(name, Path(out.path), n)))


@main.command()
@click.argument("names", nargs=-1)
@click.option("--n", type=click.IntRange(min=1), default=200, show_default=True)
def policies(names, n):
    """Every policy of precision.int8.INT8_POLICIES on every run (all runs when none is named)."""
    from resvit_export.precision.int8 import INT8_POLICIES
    from resvit_export.reference.checkpoints import REFERENCE_MODELS

    calib = _calibration("scenes")
    click.echo(HEADER.replace("| variant |", "| run, policy |"))
    for name in names or REFERENCE_MODELS:
        with tempfile.TemporaryDirectory(prefix="resvit-sens-") as tmp:
            tmp = Path(tmp)
            src = _export(name, tmp)
            for policy in INT8_POLICIES:
                out = _variant(src, tmp / f"{policy}.onnx", calib, [], policy=policy)
                click.echo(_row(f"{name}, {policy}", _agreement(name, Path(out.path), n)))


if __name__ == "__main__":
    sys.exit(main())
