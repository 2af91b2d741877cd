"""Model registry: create any model by name with config overrides (timm's register/create pattern).

A variant is a config dataclass instance plus the model class that takes it. ``create_model`` applies
overrides with type checks, seeds the random init (there are no pretrained weights: a seed makes every
artifact reproducible) and returns the model in eval mode.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass
from typing import Any, Callable

import torch

from resvit_export.errors import ConfigError, UnknownModelError

__all__ = ["ModelEntry", "register_model", "create_model", "list_models", "get_entry", "parse_overrides"]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    model_cls: Callable[..., torch.nn.Module]
    config: Any  # a frozen dataclass instance
    description: str = ""
    test_variant: bool = False  # tiny variant for CI; not a paper size


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, family: str, model_cls, config, description: str = "", test_variant: bool = False):
    """Register a named variant. Duplicate names are a programming error."""
    if name in _REGISTRY:
        raise ValueError(f"model name {name!r} is registered twice")
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"config for {name!r} must be a dataclass instance")
    _REGISTRY[name] = ModelEntry(name, family, model_cls, config, description, test_variant)


def list_models(family: str | None = None, include_test: bool = True) -> list[str]:
    """Registered names, sorted; optionally one family only."""
    return sorted(
        n
        for n, e in _REGISTRY.items()
        if (family is None or e.family == family) and (include_test or not e.test_variant)
    )


def get_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        if name.endswith(".py") or "/" in name:  # a file meant as your own model: it needs its factory's name
            hint = f" For your own model give its factory: {name}:FACTORY (see README 'Bring your own model')."
        raise UnknownModelError(
            f"unknown model {name!r}.{hint} Valid names: {', '.join(list_models())} "
            f"(`resvit-export models` lists them with sizes)."
        ) from None


def _coerce(field: dataclasses.Field, hints: dict, value: Any, model: str) -> Any:
    expected = hints[field.name]
    origin = typing.get_origin(expected)
    if origin is typing.Union or type(expected).__name__ == "UnionType":
        options = [a for a in typing.get_args(expected) if a is not type(None)]
        if value is None:
            return None
        expected = options[0] if len(options) == 1 else expected
    if expected in (int, float, bool, str):
        if isinstance(value, str) and expected is not str:
            text = value.strip().lower()
            try:
                if expected is bool:
                    if text not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError
                    return text in ("true", "1", "yes")
                return expected(float(text)) if expected is int and float(text).is_integer() else expected(text)
            except ValueError:
                raise ConfigError(
                    f"override {field.name}={value!r} for {model} is not a valid {expected.__name__}"
                ) from None
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(
                f"override {field.name}={value!r} for {model} must be {expected.__name__}, got {type(value).__name__}"
            )
    return value


def apply_overrides(name: str, config: Any, overrides: dict[str, Any]) -> Any:
    """Return ``config`` with ``overrides`` applied; unknown keys and wrong types raise ConfigError."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    changes = {}
    for key, value in overrides.items():
        if value is None:  # None means "keep the default"
            continue
        if key not in fields:
            raise ConfigError(
                f"{name} has no config field {key!r}. Valid fields: {', '.join(sorted(fields))}"
            )
        changes[key] = _coerce(fields[key], hints, value, name)
    try:
        return dataclasses.replace(config, **changes)
    except (ValueError, TypeError) as err:  # __post_init__ validation
        raise ConfigError(f"invalid config for {name}: {err}") from err


def parse_overrides(items: typing.Iterable[str]) -> dict[str, str]:
    """Parse CLI ``key=value`` strings (values are coerced later against the config's field types)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. --set depth=6)")
        out[key.strip()] = value.strip()
    return out


def create_model(name: str, *, seed: int | None = 0, **overrides: Any) -> torch.nn.Module:
    """Build a registered model in eval mode.

    Args:
        name: a name from ``list_models()``.
        seed: seeds the random initialisation (None: use the global RNG).
        **overrides: config fields to change; None values keep the default.

    Raises:
        UnknownModelError: the name is not registered (the message lists valid names).
        ConfigError: an override names no field or has the wrong type.
    """
    entry = get_entry(name)
    config = apply_overrides(name, entry.config, overrides)
    if seed is None:
        model = entry.model_cls(config)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = entry.model_cls(config)
    model.model_name = name
    model.family = entry.family  # the registry is the family's single owner
    return model.eval()
