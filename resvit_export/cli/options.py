"""Every user input of every command, parsed once and checked here: one click ParamType per concept, and one
shared option decorator per option group so defaults and help cannot drift between commands.

A bad value is a one-line usage error (exit 2) raised while click parses the command line, before the
command body runs: no model is built and no file is created. What needs the model (profile vs. its
minimum side, ``--set`` values vs. the config's invariants, resolutions inside the profile) is checked by
:mod:`resvit_export.preflight`, still before any output directory is touched.

The parsers themselves live in the library (profiles.py, trt/devices.py): a ParamType only adapts one to click.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from resvit_export.errors import UsageError
from resvit_export.graph.passes import PASS_NAMES
from resvit_export.graph.trt_ops import DEFAULT_TARGET, TARGET_NAMES
from resvit_export.layout import PRECISIONS
from resvit_export.profiles import MAX_BATCH, BatchRange, ResolutionProfile, parse_batch, parse_profile, parse_sizes
from resvit_export.trt.devices import DEVICE_PRESETS, parse_memory_size

__all__ = [
    "DEFAULT_PROFILE", "DEFAULT_PRECISION", "DEFAULT_TARGET", "SEED_MAX", "CALIB_METHODS",
    "LibraryParam", "PROFILE", "BATCH", "RESOLUTIONS", "MEMORY_SIZE", "OverrideType",
    "profile_options", "model_options", "precision_option", "target_option", "device_options",
    "tolerance_options", "calibration_options", "force_option", "allow_unverified_option", "compose",
]

DEFAULT_PROFILE = "224-1792"
DEFAULT_PRECISION = "fp32"
SEED_MAX = 2**32 - 1  # numpy's legacy seeding and most RNGs take 32-bit seeds; torch takes more, ORT inputs do not
CALIB_METHODS = ("entropy", "minmax", "percentile")


class LibraryParam(click.ParamType):
    """A ParamType over one library parser that raises UsageError: its message becomes click's one-line error."""

    def __init__(self, metavar: str, parse: Callable[[str], Any]):
        self.name = metavar
        self._parse = parse

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value  # already parsed (a default given as an object)
        try:
            return self._parse(value)
        except UsageError as err:
            self.fail(str(err), param, ctx)


# ParamTypes are stateless, so one instance each serves every command.
PROFILE = LibraryParam("RANGE", parse_profile)
BATCH = LibraryParam("MIN-MAX@OPT", parse_batch)
RESOLUTIONS = LibraryParam("HxW,...", parse_sizes)
MEMORY_SIZE = LibraryParam("SIZE", parse_memory_size)


def _parse_calib_data(text: str):
    from resvit_export.precision.calibration import parse_calib_data  # numpy: imported only when the flag is used

    return parse_calib_data(text)


CALIB_DATA = LibraryParam("DIR|builtin", _parse_calib_data)


class OverrideType(click.ParamType):
    """``--set KEY=VALUE`` -> (key, value); the value is checked against the model config later (preflight)."""

    name = "KEY=VALUE"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        key, sep, val = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"override {value!r} is not of the form key=value (e.g. --set depth=6)", param, ctx)
        return key.strip(), val.strip()


def compose(*decorators):
    """Apply option decorators in reading order (the first listed appears first in --help)."""

    def apply(fn):
        for deco in reversed(decorators):
            fn = deco(fn)
        return fn

    return apply


def with_batch(profiles: tuple[ResolutionProfile, ...], batch: BatchRange | None) -> list[ResolutionProfile]:
    """Fold ``--batch`` into each plain-range profile; a trtexec-form profile carries its own batch."""
    import dataclasses

    profiles = profiles or (parse_profile(DEFAULT_PROFILE),)
    if batch is None:
        return list(profiles)
    out = []
    for p in profiles:
        if p.input_name is not None and p.batch != batch and p.batch != BatchRange():
            raise click.BadParameter(f"profile {p} sets its own batch {p.batch} (trtexec form); drop --batch {batch}",
                                     param_hint="'--batch'")
        out.append(p if p.input_name is not None else dataclasses.replace(p, batch=batch))
    return out


def profile_options(fn):
    return compose(
        click.option("--profile", "profiles", multiple=True, type=PROFILE,
                     help=f"Resolution range, repeatable: 224-1792, 224x320-1792x1024, 224-1792@512, or trtexec "
                          f"'x:1x3x224x224,x:1x3x512x512,x:1x3x1792x1792'.  [default: {DEFAULT_PROFILE}]"),
        click.option("--batch", type=BATCH, default=None,
                     help=f"Batch range MIN-MAX@OPT, e.g. 1-8@1 (at most {MAX_BATCH}).  [default: 1]"),
    )(fn)


def model_options(fn):
    return compose(
        click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="safetensors checkpoint (default: the seeded random init)."),
        click.option("--set", "overrides", multiple=True, type=OverrideType(),
                     help="Model config override, repeatable; checked against the config's invariants."),
        click.option("--seed", type=click.IntRange(0, SEED_MAX), default=0, show_default=True,
                     help="Seed of the random init and of the test inputs."),
    )(fn)


def precision_option(help_text: str):
    return click.option("--precision", type=click.Choice(PRECISIONS), default=DEFAULT_PRECISION,
                        show_default=True, help=help_text)


def target_option(help_text: str = "TensorRT ONNX parser to lint against (repeatable).", extra: tuple[str, ...] = ()):
    """``extra``: target names beyond the TensorRT parsers that one command accepts (build: ``cpu``)."""
    return click.option("--target", "targets", multiple=True,
                        type=click.Choice(TARGET_NAMES + tuple(extra), case_sensitive=False),
                        help=f"{help_text}  [default: {DEFAULT_TARGET}]")


def device_options(fn):
    return compose(
        click.option("--device", type=click.Choice(sorted(DEVICE_PRESETS), case_sensitive=False), default=None,
                     help="Target board preset; its memory budget is 75% of the board's unified memory."),
        click.option("--memory-budget", type=MEMORY_SIZE, default=None,
                     help="Activation memory budget, e.g. 6G (binary units; overrides --device's)."),
    )(fn)


def tolerance_options(fn):
    return compose(
        click.option("--atol", type=click.FloatRange(min=0), default=None,
                     help="Absolute tolerance (elementwise, with --rtol)."),
        click.option("--rtol", type=click.FloatRange(min=0), default=None,
                     help="Relative tolerance (an element passes atol OR rtol)."),
        click.option("--cos-min", type=click.FloatRange(-1, 1), default=None,
                     help="Minimum cosine similarity per case, in [-1, 1]."),
        click.option("--top1-min", type=click.FloatRange(0, 1), default=None,
                     help="Minimum top-1 agreement over all cases, in [0, 1]."),
    )(fn)


def calibration_options(fn):
    return compose(
        click.option("--calib-data", type=CALIB_DATA, default=None,
                     help="INT8 calibration data: a folder of images/arrays, a saved calib.npz, or 'builtin' "
                          "(the CC0/public-domain photos shipped in scikit-image and matplotlib)."),
        click.option("--calib-synthetic", type=click.IntRange(1, 4096), default=None, metavar="N",
                     help="INT8: N deterministic real-image-like synthetic images per resolution."),
        click.option("--calib-method", type=click.Choice(CALIB_METHODS), default="entropy", show_default=True,
                     help="ONNX Runtime calibration method (symmetric ranges)."),
    )(fn)


def force_option(what: str = "Replace an earlier resvit-export output in the directory."):
    return click.option("--force", is_flag=True, help=what)


def allow_unverified_option(fn):
    return click.option("--allow-unverified", is_flag=True,
                        help="Use a directory whose status.json is not PASSED (recorded in what this writes). "
                             "Files that no longer match their recorded sha256 are refused regardless.")(fn)


def passes_option(fn):
    return click.option("--only", "only_passes", multiple=True, type=click.Choice(PASS_NAMES),
                        help="Run only these rewrite passes (repeatable; debugging).")(fn)


def tolerance_overrides(atol, rtol, cos_min, top1_min):
    from resvit_export.preflight import ToleranceOverrides

    return ToleranceOverrides(atol=atol, rtol=rtol, cos_min=cos_min, top1_min=top1_min)
