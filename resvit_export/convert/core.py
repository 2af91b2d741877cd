"""Read a foreign safetensors state dict, map it, prove it loads into the target model, write it atomically."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from resvit_export.errors import CheckpointError, OutputDirError, UsageError

from . import naflexvit, resformer_official, timm_vit

__all__ = ["FORMATS", "SourceFormat", "ConversionResult", "read_state_dict", "detect_format", "convert_checkpoint"]


@dataclass(frozen=True)
class SourceFormat:
    name: str
    family: str  # registry family the format converts into
    convert: Callable[[Any], tuple[dict, dict]]  # state -> (our state, config fields read off the tensors)
    marker: str  # a key only this format has (detection)


FORMATS = {
    f.name: f
    for f in (
        SourceFormat("resformer-official", "resformer", resformer_official.convert, "pos_embed.embed_layer.weight"),
        SourceFormat("timm-naflexvit", "navit", naflexvit.convert, "embeds.proj.weight"),
        SourceFormat("timm-vit", "deit", timm_vit.convert, "patch_embed.proj.weight"),
    )
}
_OUR_LAYOUT_MARKERS = ("cls_pos", "pos_conv.weight", "pos_y", "fpe.table", "rel_bias")


@dataclass(frozen=True)
class ConversionResult:
    path: Path
    model: str
    source_format: str
    tensors: int
    overrides: dict[str, Any]  # config fields that differ from the registered model (pass them as --set)

    @property
    def set_flags(self) -> str:
        return " ".join(f"--set {k}={v}" for k, v in self.overrides.items())


def read_state_dict(path: str | os.PathLike) -> dict:
    """A safetensors file's tensors (a leading ``module.`` from DataParallel is dropped). Never unpickles."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from resvit_export.models.weights import PICKLE_RECIPE, PICKLE_SUFFIXES

    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(f"{path} is a pickle checkpoint; resvit-export never unpickles (it can run code). "
                              f"Convert it once in a trusted environment: {PICKLE_RECIPE}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err})") from err
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def detect_format(state: dict) -> str:
    """The source format from the keys (see FORMATS); CheckpointError when none fits."""
    if any(k in state for k in _OUR_LAYOUT_MARKERS):
        raise CheckpointError("this checkpoint is already in resvit-export's layout; pass it to --weights as it is")
    for fmt in FORMATS.values():
        if fmt.marker in state:
            return fmt.name
    raise CheckpointError(f"unrecognised checkpoint layout (first keys: {', '.join(list(state)[:4])}); "
                          f"known formats: {', '.join(FORMATS)}")


def _overrides(entry, inferred: dict, user: dict) -> dict:
    """Config fields to set on the registered model: what the checkpoint says, where it differs; the user wins."""
    defaults = dataclasses.asdict(entry.config)
    out = {k: v for k, v in inferred.items() if defaults.get(k) != v}
    if "dim" in out and "num_heads" not in inferred and "num_heads" not in user:
        raise CheckpointError(
            f"the checkpoint is {inferred['dim']} wide but {entry.name} is {defaults['dim']} wide, and attention heads "
            f"cannot be read off the tensors: choose the matching model or pass --set num_heads=N")
    out.update(user)
    return out


def _load_strict(model, state: dict, source: str) -> None:
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise CheckpointError(f"{source}: converted state has no tensor {key!r}; the architecture differs")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{source}: tensor {key!r} has shape {tuple(state[key].shape)}, the model needs "
                                  f"{tuple(tensor.shape)}")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise CheckpointError(f"{source}: tensor {extra[0]!r} has no place in {model.model_name} "
                              f"({len(extra)} unmapped in total)")
    model.load_state_dict(state, strict=True)


def convert_checkpoint(src: str | os.PathLike, out: str | os.PathLike, model: str, source_format: str | None = None,
                       overrides: dict[str, Any] | None = None, force: bool = False) -> ConversionResult:
    """Convert ``src`` (safetensors) into weights for the registered ``model``, written to ``out``.

    Everything is checked before ``out`` is touched: the model name, the output path, the format and the
    variant (unmappable ones are refused by name), and a strict load into the target model.

    Raises:
        UnknownModelError / UsageError: bad model name, format name or output path.
        CheckpointError: unreadable or pickled source, unmappable variant, shapes that do not fit.
        OutputDirError: ``out`` exists and ``force`` is False.
    """
    from resvit_export.io import sha256_file
    from resvit_export.models import create_model, get_entry, save_weights

    src, out = Path(src), Path(out)
    entry = get_entry(model)
    if source_format is not None and source_format not in FORMATS:
        raise UsageError(f"unknown source format {source_format!r}; choose from {', '.join(FORMATS)}")
    if out.suffix != ".safetensors":
        raise UsageError(f"output {out} must end in .safetensors")
    if out.exists() and not force:
        raise OutputDirError(f"{out} exists; pass --force to overwrite it")
    state = read_state_dict(src)
    fmt = FORMATS[source_format or detect_format(state)]
    if fmt.family != entry.family:
        raise UsageError(f"a {fmt.name} checkpoint converts into {fmt.family}_* models, not {model} ({entry.family})")
    ours, inferred = fmt.convert(state)
    settings = _overrides(entry, inferred, dict(overrides or {}))
    target = create_model(model, seed=0, **settings)
    _load_strict(target, ours, f"{src.name} ({fmt.name})")
    save_weights(target, out, extra_metadata={"converted_from": fmt.name, "source_file": src.name,
                                              "source_sha256": sha256_file(src)})
    return ConversionResult(out, model, fmt.name, len(ours), settings)
