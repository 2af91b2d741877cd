"""Save and load weights with safetensors (no pickle: loading never executes code from the file)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from resvit_export.errors import CheckpointError

__all__ = ["save_weights", "load_weights"]


def save_weights(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model``'s state dict to ``path`` (temp file + rename, so a crash leaves no partial file)."""
    from safetensors.torch import save_file

    path = Path(path)
    meta = {"model_name": getattr(model, "model_name", type(model).__name__)}
    if dataclasses.is_dataclass(getattr(model, "cfg", None)):
        meta["config"] = json.dumps(dataclasses.asdict(model.cfg))
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    from resvit_export.io import atomic_path  # one atomic writer: temp + rename, umask permissions

    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return path


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
    if path.suffix in (".pt", ".pth", ".bin", ".ckpt"):
        raise CheckpointError(
            f"{path} looks like a pickle checkpoint; resvit-export only loads safetensors (pickle can run code). "
            f"Convert it once in a trusted environment with safetensors.torch.save_file(state_dict, 'model.safetensors')."
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
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise CheckpointError(f"checkpoint {path.name} has tensor {extra[0]!r} that this model does not have "
                              f"({len(extra)} unexpected in total); was it saved from a different model?")
    model.load_state_dict(state, strict=True)
    return model
