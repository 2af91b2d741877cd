#!/usr/bin/env python
"""Train the tiny reference models and record what they learned (reproducible, CPU only).

    nice -n 19 python training/train_reference.py train all       # one thread each, a few minutes per model
    python training/train_reference.py evaluate all               # held-out accuracy into the records (heavy)
    python training/train_reference.py table                      # the README's accuracy table from the records

``train`` writes ``weights/<model>.safetensors`` and ``weights/<model>.json`` (the training record) for each
model; ``evaluate`` adds the held-out accuracy per resolution to each record. They are separate so that
evaluation can be rerun (or run on another machine) without training again. The task, the recipes and the
evaluation protocol live in ``resvit_export.reference``; this file only wires them to files.

Exit codes: 0 ok · 2 bad arguments (unknown model, bad number) · 6 a weights/record file is missing or broken.
"""

from __future__ import annotations

import dataclasses
import platform
import sys
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "weights"


def _runs(names: tuple[str, ...]) -> list[str]:
    from resvit_export.reference.checkpoints import RUNS

    if not names:
        raise click.UsageError("name at least one run, or `all`")
    if names == ("all",):
        return list(RUNS)
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        raise click.UsageError(f"no training recipe for {', '.join(unknown)}; choose from {', '.join(RUNS)} or `all`")
    return list(names)


def _data_recipe() -> dict:
    from resvit_export.reference import task, training

    return {
        "task": "name the shape (10 classes) in a procedurally rendered image; see resvit_export/reference/task.py",
        "classes": list(task.CLASS_NAMES),
        "object_radius_of_shorter_side": list(task.RADIUS_RANGE),
        "elongation_ellipse_rectangle": list(task.ELONGATION_RANGE),
        "colour_bands_dark_light": [list(task.DARK_BAND), list(task.LIGHT_BAND)],
        "background_ramp_span": task.RAMP_SPAN,
        "pixel_noise_std": task.NOISE_STD,
        "normalisation": "ImageNet mean/std",
        "train_sides_px": list(training.TRAIN_RANGE),
        "train_max_aspect": training.MAX_ASPECT,
        "train_seeds": "SeedSequence([0, seed, step, 0]) scenes, [0, seed, step, 1] sizes/drop rates",
        "heldout_seeds": "SeedSequence([1, i]) for scene i, label i % 10 (disjoint from training)",
    }


@click.group()
def cli():
    """Reference weights for the tiny *_test models."""


@cli.command()
@click.argument("names", nargs=-1)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="override the recipe's step count")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True)
def train(names, seed, steps, out):
    """Train NAMES (or `all`) and write weights + training records to --out."""
    runs = _runs(names)
    out.mkdir(parents=True, exist_ok=True)
    import numpy as np
    import torch

    from resvit_export.io import sha256_file, write_json_atomic
    from resvit_export.models import create_model, save_weights
    from resvit_export.reference.checkpoints import record_path, weights_path
    from resvit_export.reference.training import RECIPES, train as run_training

    for name in runs:
        recipe = RECIPES[name]
        click.echo(f"{name}: {steps or recipe.steps} steps, batch {recipe.batch}, {recipe.kind}")
        result = run_training(recipe, seed=seed, steps=steps,
                              progress=lambda s, loss: click.echo(f"  step {s:5d}  loss {loss:.3f}")
                              if s % 250 == 0 else None)
        # save from a fresh registry instance: the file's metadata then names the plain registry config
        fresh = create_model(recipe.model)
        fresh.load_state_dict(result.model.state_dict())
        wpath = save_weights(fresh, weights_path(name, out))
        record = {
            "run": name,
            "model": recipe.model,
            "seed": seed,
            "steps": result.steps,
            "wall_s": round(result.wall_s, 1),
            "threads": torch.get_num_threads(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "versions": {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()},
            "machine": platform.machine(),
            "recipe": dataclasses.replace(recipe, steps=result.steps).describe(),
            "data": _data_recipe(),
            "final_loss": round(result.final_loss, 4),
            "loss_log": result.log,
            "weights": {"file": wpath.name, "bytes": wpath.stat().st_size, "sha256": sha256_file(wpath)},
            "heldout": None,  # filled by `evaluate`
        }
        write_json_atomic(record_path(name, out), record)
        click.echo(f"{name}: {result.wall_s:.0f} s, final loss {result.final_loss:.3f} -> {wpath}")


@cli.command()
@click.argument("names", nargs=-1)
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT,
              show_default=True)
@click.option("--n", type=click.IntRange(min=1), default=None, help="held-out scenes per size (protocol default)")
def evaluate(names, folder, n):
    """Held-out accuracy of NAMES (or `all`) at every protocol size, written into their records."""
    import torch

    from resvit_export.errors import CheckpointError
    from resvit_export.io import sha256_file, write_json_atomic
    from resvit_export.reference.checkpoints import load_record, record_path, reference_model, weights_path
    from resvit_export.reference.evaluate import (HELDOUT_N, SIZE_GROUPS, accuracy_table, max_protocol_side,
                                                  torch_runner)
    from resvit_export.reference.report import group_mean

    runs = _runs(names)
    for name in runs:  # refuse before any work: every record must exist and match its weights
        rec = load_record(name, folder)
        if rec["weights"]["sha256"] != sha256_file(weights_path(name, folder)):
            raise CheckpointError(f"{weights_path(name, folder)} does not match the sha256 in its record; retrain it")
    for name in runs:
        start = time.perf_counter()
        table = accuracy_table(torch_runner(reference_model(name, folder, max_side=max_protocol_side())),
                               n or HELDOUT_N)
        rec = load_record(name, folder)
        rec["heldout"] = {**table, "eval_threads": torch.get_num_threads()}
        write_json_atomic(record_path(name, folder), rec)
        means = ", ".join(f"{group} {group_mean(table[group]):.3f}" for group in SIZE_GROUPS)
        click.echo(f"{name}: mean accuracy {means} ({time.perf_counter() - start:.0f} s)")


@cli.command()
@click.argument("names", nargs=-1)
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT,
              show_default=True)
def table(names, folder):
    """Print the README's markdown table of held-out accuracy from the records of NAMES (default: all)."""
    from resvit_export.reference.report import markdown_table

    click.echo(markdown_table(folder, tuple(_runs(names or ("all",)))))


def main() -> int:
    from resvit_export.errors import ResvitExportError

    try:
        cli.main(standalone_mode=False)
    except click.UsageError as err:
        click.echo(f"error: {err.format_message()}", err=True)
        return 2
    except ResvitExportError as err:
        click.echo(f"error: {err}", err=True)
        return err.exit_code
    except click.Abort:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
