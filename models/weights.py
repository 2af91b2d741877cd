"""Save and load weights with safetensors (no pickle: loading never executes code from the file)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from resvit_export.errors import CheckpointError
from resvit_export.io import atomic_path

__all__ = ["save_weights", "load_weights", "read_metadata", "METADATA_KEY", "PICKLE_SUFFIXES", "PICKLE_RECIPE"]

# safetensors keeps its metadata in a Rust HashMap, so several keys come out in a different order in every
# process and the same weights hash differently. One key holding sorted JSON makes the bytes reproducible.
METADATA_KEY = "resvit_export"

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".tar")
# One line a user can run where the pickle's origin is trusted; `weights_only=True` restricts unpickling to
# tensors and containers, and `.get("model", sd)` unwraps training checkpoints ({"model": ..., "optimizer": ...}).
PICKLE_RECIPE = ("""python -c "import torch, safetensors.torch as st; sd = torch.load('IN.pth', map_location='cpu', """
                 """weights_only=True); sd = sd.get('model', sd); st.save_file({k: v.contiguous() for k, v in """
                 """sd.items()}, 'OUT.safetensors')\"""")


def save_weights(model: torch.nn.Module, path: str | os.PathLike, extra_metadata: dict[str, str] | None = None) -> Path:
    """Write ``model``'s state dict to ``path`` (temp file + rename, so a crash leaves no partial file).

    The safetensors metadata is one key, ``resvit_export``, holding sorted JSON: ``model_name``, the ``config``
    (a dict) and ``extra_metadata``. Same model, same bytes, in any process (see METADATA_KEY).
    """
    from safetensors.torch import save_file

    path = Path(path)
    meta: dict = {"model_name": getattr(model, "model_name", "") or type(model).__name__}
    if dataclasses.is_dataclass(getattr(model, "cfg", None)):
        meta["config"] = dataclasses.asdict(model.cfg)
    meta.update(extra_metadata or {})
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata :func:`save_weights` wrote, as a dict (``config`` decoded); {} when there is none.

    Reads both layouts: one ``resvit_export`` key of JSON (now), and the older separate keys with ``config`` as a
    JSON string (the committed reference weights use it).
    """
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        raw = f.metadata() or {}
    if METADATA_KEY in raw:
        return json.loads(raw[METADATA_KEY])
    meta: dict = dict(raw)
    if isinstance(meta.get("config"), str):
        meta["config"] = json.loads(meta["config"])
    return meta


def _saved_overrides(path: Path, model: torch.nn.Module) -> str:
    """`--set` flags that turn ``model``'s config into the one the checkpoint was saved with ('' if unknown)."""
    try:
        saved = read_metadata(path).get("config") or {}
    except (OSError, ValueError):
        return ""
    cfg = getattr(model, "cfg", None)
    if not saved or not dataclasses.is_dataclass(cfg):
        return ""
    ours = dataclasses.asdict(cfg)
    diff = [f"--set {k}={v}" for k, v in saved.items() if k in ours and ours[k] != v]
    return f" (it was saved with {' '.join(diff)})" if diff else ""


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> torch.nn.Module:
    """Load a safetensors checkpoint into ``model``; shapes must fit the model's config exactly.

    Raises:
        CheckpointError: unreadable file, or the first missing/unexpected/mismatching tensor by name.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path} looks like a pickle checkpoint; resvit-export only loads safetensors (unpickling can run code). "
            f"Convert it once in a trusted environment: {PICKLE_RECIPE}"
        )
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err})") from err
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise CheckpointError(f"checkpoint {path.name} has no tensor {key!r} (expected shape {tuple(tensor.shape)}); "
                                  f"was it saved from a different model or config?")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"checkpoint tensor {key!r} has shape {tuple(state[key].shape)} but the model config needs "
                f"{tuple(tensor.shape)}; pass the matching --set overrides or the right model name"
                + _saved_overrides(path, model)
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise CheckpointError(f"checkpoint {path.name} has tensor {extra[0]!r} that this model does not have "
                              f"({len(extra)} unexpected in total); was it saved from a different model?")
    model.load_state_dict(state, strict=True)
    return model
