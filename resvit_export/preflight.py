"""Checks that run before any work: every value a command was given, resolved and refused if wrong.

The CLI's ParamTypes (cli/options.py) already refused malformed text. What is left needs the registry or the
model: the model name, ``--set`` values (the config's own invariants raise ConfigError), the profiles against
the model's size rule, ``--resolutions`` inside a profile, the weights file, the calibration source, the
optional dependencies the command will import. All of it runs before an output directory is touched, so a
refused command creates nothing and fails in seconds, not after an export.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import MissingDependencyError, UsageError
from .profiles import ResolutionProfile

__all__ = ["ToleranceOverrides", "PreparedModel", "prepare_model", "deployment_overrides", "check_resolutions",
           "check_calibration_source", "require_modules", "check_seed", "SEED_MAX"]

SEED_MAX = 2**32 - 1


@dataclass(frozen=True)
class ToleranceOverrides:
    """The user's ``--atol/--rtol/--cos-min/--top1-min``; None keeps the precision's default."""

    atol: float | None = None
    rtol: float | None = None
    cos_min: float | None = None
    top1_min: float | None = None

    def resolve(self, precision: str):
        """The precision's default :class:`~resvit_export.validate.parity.Tolerances` with these applied
        (its own range checks raise UsageError)."""
        from .validate.parity import default_tolerances

        return default_tolerances(precision).with_overrides(**dataclasses.asdict(self))

    def to_dict(self) -> dict[str, float]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class PreparedModel:
    """The PyTorch reference, built and checked: config invariants held, profiles inside its size rule."""

    name: str
    family: str
    model: Any  # torch.nn.Module in eval mode
    overrides: dict[str, Any]  # what create_model received (deployment overrides included)

    @property
    def size_rule(self):
        return self.model.size_rule


def deployment_overrides(model_name: str, profiles: Sequence[ResolutionProfile], overrides: dict[str, Any]) -> dict:
    """``overrides`` fitted to the profiles by the model contract (models.contract.fit_to_profiles): ``max_side``
    lowered to the largest profile side unless the user set it (for ViTAR that fixes the ATM stage count)."""
    from .models import fit_to_profiles

    return fit_to_profiles(model_name, profiles, overrides)


def check_seed(seed: int | None) -> None:
    if seed is not None and not (0 <= int(seed) <= SEED_MAX):
        raise UsageError(f"seed {seed} is outside 0..{SEED_MAX}")


def prepare_model(name: Any, overrides: dict[str, Any], *, seed: int | None, weights: str | Path | None,
                  profiles: Sequence[ResolutionProfile], fit_to_profiles: bool = True) -> PreparedModel:
    """Build the reference model the way export will, and check everything that depends on it.

    ``name`` is a registry name, ``pkg.module:factory`` (or ``path/file.py:factory``), or an ``nn.Module``
    (the Python API); the last two must meet the model contract (models/contract.py).

    Raises:
        UnknownModelError / ConfigError (exit 2): the name, an override's field or type, or a config invariant.
        ModelContractError / UsageError (exit 2): an external model that lacks a contract piece or cannot load.
        InputSizeError (exit 2): a profile outside the model's size rule.
        CheckpointError (exit 6): an unreadable or mismatching weights file.
    """
    from .models import create_model, get_entry, load_weights
    from .models.external import adopt_module, external_model, is_factory_spec

    check_seed(seed)
    if not isinstance(name, str):  # the Python API's build(model=nn.Module): the caller built it
        if overrides:
            raise UsageError("overrides (--set) only apply to a registry name or a module:factory, not to a "
                             "model object; build the object with them")
        model = adopt_module(name, type(name).__name__)
        name, family, applied = model.model_name, model.family, {}
    elif is_factory_spec(name):  # pkg.module:factory (models/external.py)
        model = external_model(name, overrides, seed=seed)
        family, applied = model.family, dict(overrides)
    else:
        family = get_entry(name).family
        applied = deployment_overrides(name, profiles, overrides) if fit_to_profiles else dict(overrides)
        model = create_model(name, seed=seed, **applied)
    for prof in profiles:
        prof.check_against(model.size_rule)
    if weights is not None:
        load_weights(model, weights)
    return PreparedModel(name, family, model, applied)


def check_resolutions(resolutions: Iterable[tuple[int, int]], profiles: Sequence[ResolutionProfile],
                      size_rule) -> list[tuple[int, int]]:
    """Every extra parity size must lie inside some profile and at or above the model's minimum side."""
    out = [tuple(hw) for hw in resolutions]
    for h, w in out:
        if min(h, w) < size_rule.min_side:
            raise UsageError(f"--resolutions {h}x{w} is below the model's minimum side of {size_rule.min_side} px")
        if not any(p.min[0] <= h <= p.max[0] and p.min[1] <= w <= p.max[1] for p in profiles):
            ranges = ", ".join(str(p) for p in profiles)
            raise UsageError(f"--resolutions {h}x{w} lies outside the profile(s) {ranges}; widen --profile or drop it")
    return out


def check_calibration_source(precision: str, calib_data: Path | str | None, calib_synthetic: int | None) -> None:
    """INT8 needs exactly one calibration source; other precisions take none. ``calib_data`` "builtin" needs
    the photos extra (MissingDependencyError, exit 7, when a photo file is missing)."""
    from .precision.calibration import BUILTIN_CALIB, NO_DATA_HINT

    if calib_data is not None and calib_synthetic is not None:
        raise UsageError("--calib-data and --calib-synthetic conflict: pass one of them")
    if precision == "int8" and calib_data is None and calib_synthetic is None:
        raise UsageError(NO_DATA_HINT)
    if precision != "int8" and (calib_data is not None or calib_synthetic is not None):
        raise UsageError(f"--calib-data/--calib-synthetic only apply to --precision int8, not {precision}")
    if str(calib_data) == BUILTIN_CALIB:  # the photos come with installed wheels: check they are there
        from .data.photos import BUILTIN_PHOTOS, photo_path

        for photo in BUILTIN_PHOTOS:
            photo_path(photo.name)
    elif calib_data is not None:
        data = Path(calib_data)
        if not data.exists():
            raise UsageError(f"--calib-data {data} does not exist")
        if data.is_file() and data.name != "calib.npz":
            raise UsageError(f"--calib-data {data} must be a folder of images/arrays or a saved calib.npz")


def require_modules(names: Iterable[str]) -> None:
    """MissingDependencyError (exit 7) for the first of ``names`` that cannot be imported - checked without
    importing anything, before any work."""
    from ._optional import _HINTS, is_available

    for name in names:
        if not is_available(name):
            pip_name, why = _HINTS.get(name, (name, f"this command needs {name}"))
            raise MissingDependencyError(f"{why}, but {name} is not installed; install it with "
                                         f"`pip install {pip_name}`")
