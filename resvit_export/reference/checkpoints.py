"""Where the trained reference weights and their training records live, and how to load them.

A run is one trained model: the five ``*_test`` models under their own names, plus ablation runs (``ABLATIONS``).
Layout (committed in the repository's ``weights/`` folder, next to ``models/``):

    weights/<run>.safetensors   the trained state dict (``models.save_weights``; loading never unpickles)
    weights/<run>.json          its training record: seed, steps, wall time, threads, versions, data recipe,
                                  held-out accuracy per resolution, sha256 of the weights file

The folder ships with the source tree, not inside the wheel: a copy installed from a wheel has no
``weights/`` and says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from resvit_export.errors import CheckpointError, UsageError

__all__ = ["REFERENCE_MODELS", "ABLATIONS", "RUNS", "model_of", "weights_dir", "weights_path", "record_path",
           "load_record", "reference_model", "run_of_weights"]

REFERENCE_MODELS = ("vitar_test", "resformer_test", "navit_test", "rivit_test", "deit_test")
# extra runs that answer a question about the comparison: run name -> registry model it trains.
# deit_test_random_size: DeiT with the random-size recipe of the others, to tell the architecture's share of the
# accuracy at unseen sizes from the training recipe's.
ABLATIONS = {"deit_test_random_size": "deit_test"}
RUNS = REFERENCE_MODELS + tuple(ABLATIONS)

_REPO_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


def weights_dir() -> Path:
    """The repository's ``weights/`` folder (raises CheckpointError when this is not a source checkout)."""
    if not _REPO_WEIGHTS.is_dir():
        raise CheckpointError(f"reference weights folder {_REPO_WEIGHTS} does not exist; the trained weights ship "
                              f"in the source repository's weights/ folder (install from a clone: `make install`)")
    return _REPO_WEIGHTS


def _check_name(name: str) -> None:
    if name not in RUNS:
        raise UsageError(f"no reference weights for {name!r}; trained runs: {', '.join(RUNS)}")


def model_of(name: str) -> str:
    """The registry model a run trains (the run's own name, except for ablations)."""
    _check_name(name)
    return ABLATIONS.get(name, name)


def weights_path(name: str, folder: str | os.PathLike | None = None) -> Path:
    _check_name(name)
    return Path(folder if folder is not None else weights_dir()) / f"{name}.safetensors"


def record_path(name: str, folder: str | os.PathLike | None = None) -> Path:
    _check_name(name)
    return Path(folder if folder is not None else weights_dir()) / f"{name}.json"


def load_record(name: str, folder: str | os.PathLike | None = None) -> dict:
    path = record_path(name, folder)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"training record {path} is missing or not JSON ({err}); "
                              f"rerun `python training/train_reference.py train {name}`") from err


def reference_model(name: str, folder: str | os.PathLike | None = None, max_side: int | None = None):
    """The registry model of run ``name`` with its trained weights, in eval mode.

    ``max_side``: fit the model to inputs up to this side with the config's deploy-time overrides (ViTAR then
    runs only the ATM stages that size needs: same weights, bit-identical outputs, less work).
    """
    from resvit_export.models import create_model, get_entry, load_weights

    model = model_of(name)
    overrides = {} if max_side is None else get_entry(model).config.deploy_overrides(max_side)
    return load_weights(create_model(model, **overrides), weights_path(name, folder)).eval()


def run_of_weights(model_name: str, weights: str | os.PathLike | None) -> str | None:
    """The trained run whose weights file ``weights`` is (same registry model, same sha256 as its record's
    ``weights.sha256``), else None: a build of such a file can be judged on the task's held-out images."""
    if weights is None or not isinstance(model_name, str):
        return None
    from resvit_export.io import sha256_file

    digest = sha256_file(weights)
    for run in RUNS:
        try:
            if model_of(run) == model_name and load_record(run).get("weights", {}).get("sha256") == digest:
                return run
        except CheckpointError:  # no weights folder (a wheel install) or a missing record: not this run
            continue
    return None
