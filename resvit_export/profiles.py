"""Resolution profiles: the user's ``--profile`` strings as validated value types.

Accepted forms (one string = one profile; the flag is repeatable):

    224-1792                 square range, opt chosen by the planner
    224x320-1792x1024        H×W range (min H×W - max H×W)
    224-1792@512             with an opt point (``@512x640`` for a non-square opt)
    x:1x3x224x224,x:1x3x512x512,x:8x3x1792x1792
                             trtexec's NAMExNxCxHxW form for min,opt,max (sets the batch range too)

The batch range is separate: ``--batch 1-8@1`` (``min-max@opt``; a single number means fixed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import InputSizeError, UsageError

__all__ = ["BatchRange", "ResolutionProfile", "parse_profile", "parse_batch", "parse_sizes", "profile_from_dict",
           "PROFILE_FORMS", "MAX_BATCH", "MAX_SIDE"]

# Upper bounds on what a user may ask for. An edge engine past batch 256 is not a resolution-flexible
# deployment, and the parity matrix runs the batch max through PyTorch on the CPU. Sizes in a size list stay
# below 4096 (models/base.SizeRule.max_side); a profile is checked against its model's own SizeRule.
MAX_BATCH = 256
MAX_SIDE = 4096

PROFILE_FORMS = (
    "accepted --profile forms: '224-1792', '224x320-1792x1024', '224-1792@512', '224-1792@512x640', "
    "or trtexec's 'x:1x3x224x224,x:1x3x512x512,x:1x3x1792x1792' (min,opt,max)"
)

_HW = r"(\d+)(?:x(\d+))?"
_RANGE_RE = re.compile(rf"^{_HW}-{_HW}(?:@{_HW})?$")
_TRT_SHAPE_RE = re.compile(r"^([A-Za-z_][\w.\-]*):(\d+)x(\d+)x(\d+)x(\d+)$")


@dataclass(frozen=True)
class BatchRange:
    min: int = 1
    opt: int = 1
    max: int = 1

    def __post_init__(self):
        if not (1 <= self.min <= self.opt <= self.max):
            raise UsageError(f"batch range must satisfy 1 <= min <= opt <= max, got {self.min}/{self.opt}/{self.max}")
        if self.max > MAX_BATCH:
            raise UsageError(f"batch max {self.max} is above {MAX_BATCH}; use a smaller --batch (e.g. 1-8@1)")

    def __str__(self) -> str:
        return f"{self.min}-{self.max}@{self.opt}" if self.min != self.max else str(self.min)


@dataclass(frozen=True)
class ResolutionProfile:
    """min/opt/max input sizes in pixels as (H, W); ``opt`` None lets the planner choose."""

    min: tuple[int, int]
    max: tuple[int, int]
    opt: tuple[int, int] | None = None
    batch: BatchRange = field(default_factory=BatchRange)
    input_name: str | None = None  # only set by the trtexec form

    def __post_init__(self):
        for name, hw in (("min", self.min), ("max", self.max), ("opt", self.opt)):
            if hw is not None and (hw[0] <= 0 or hw[1] <= 0):
                raise UsageError(f"profile {name} size {hw[0]}x{hw[1]} must be positive; {PROFILE_FORMS}")
        if self.min[0] > self.max[0] or self.min[1] > self.max[1]:
            raise UsageError(
                f"profile is inverted: min {self.min[0]}x{self.min[1]} exceeds max {self.max[0]}x{self.max[1]}; "
                f"write the smaller size first"
            )
        if self.opt is not None and not all(lo <= o <= hi for lo, o, hi in zip(self.min, self.opt, self.max)):
            raise UsageError(
                f"profile opt {self.opt[0]}x{self.opt[1]} lies outside {self.min[0]}x{self.min[1]}-"
                f"{self.max[0]}x{self.max[1]}"
            )

    def __str__(self) -> str:
        def hw(v):
            return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"

        text = f"{hw(self.min)}-{hw(self.max)}"
        return text + (f"@{hw(self.opt)}" if self.opt else "")

    def contains(self, h: int, w: int, batch: int = 1) -> bool:
        return (
            self.min[0] <= h <= self.max[0]
            and self.min[1] <= w <= self.max[1]
            and self.batch.min <= batch <= self.batch.max
        )

    def resolved_opt(self, patch_size: int = 16) -> tuple[int, int]:
        """The opt point: given, or the geometric mean of min and max rounded to a patch multiple."""
        if self.opt is not None:
            return self.opt

        def mid(lo, hi):
            g = round((lo * hi) ** 0.5 / patch_size) * patch_size
            return min(max(g, lo), hi)

        return mid(self.min[0], self.max[0]), mid(self.min[1], self.max[1])

    def check_against(self, rule) -> None:
        """Raise InputSizeError if the profile leaves the model's SizeRule (a models.SizeRule)."""
        for label, (h, w) in (("min", self.min), ("max", self.max)):
            if min(h, w) < rule.min_side:
                raise InputSizeError(
                    f"profile {self} goes below the model's minimum side of {rule.min_side} px "
                    f"(its {label} is {h}x{w}); raise the profile's lower end"
                )
            if max(h, w) > rule.max_side:
                raise InputSizeError(
                    f"profile {self} goes above the model's maximum side of {rule.max_side} px (its {label} is {h}x{w})"
                )

    def to_dict(self) -> dict:
        """Lossless: :func:`profile_from_dict` gives this profile back (batch and trtexec input name included)."""
        return {
            "min": list(self.min),
            "opt": list(self.opt) if self.opt else None,
            "max": list(self.max),
            "batch": {"min": self.batch.min, "opt": self.batch.opt, "max": self.batch.max},
            "input_name": self.input_name,
        }


def profile_from_dict(d: dict) -> ResolutionProfile:
    """The inverse of :meth:`ResolutionProfile.to_dict` (the dict is schema-checked by whoever read it)."""
    b = d.get("batch") or {}
    return ResolutionProfile(tuple(d["min"]), tuple(d["max"]), tuple(d["opt"]) if d.get("opt") else None,
                             BatchRange(b.get("min", 1), b.get("opt", 1), b.get("max", 1)), d.get("input_name"))


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """The one parser of size lists (``--resolutions``, ``--calib-resolutions``): '320x1024,97x301' or '512'
    (square) -> [(H, W), ...], duplicates dropped, order kept."""
    out: list[tuple[int, int]] = []
    for part in str(text).replace(" ", "").lower().split(","):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:x(\d+))?", part)
        if not m:
            raise UsageError(f"bad size {part!r} in {text!r}; use HxW or S, comma-separated (e.g. 320x1024,97x301)")
        hw = (int(m.group(1)), int(m.group(2) or m.group(1)))
        if min(hw) < 1 or max(hw) > MAX_SIDE:
            raise UsageError(f"size {hw[0]}x{hw[1]} in {text!r} must have sides between 1 and {MAX_SIDE} px")
        if hw not in out:
            out.append(hw)
    if not out:
        raise UsageError(f"no sizes in {text!r}; use HxW or S, comma-separated (e.g. 320x1024,97x301)")
    return out


def _hw(a: str | None, b: str | None) -> tuple[int, int]:
    h = int(a)
    return (h, int(b) if b else h)


def parse_batch(text: str | None) -> BatchRange:
    """Parse ``--batch``: '1', '1-8', '1-8@2'."""
    if text is None:
        return BatchRange()
    m = re.fullmatch(r"\s*(\d+)(?:-(\d+))?(?:@(\d+))?\s*", str(text))
    if not m:
        raise UsageError(f"bad --batch {text!r}; use N, MIN-MAX or MIN-MAX@OPT (e.g. 1-8@1)")
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) else lo
    opt = int(m.group(3)) if m.group(3) else lo
    return BatchRange(lo, opt, hi)


def parse_profile(text: str, batch: BatchRange | None = None) -> ResolutionProfile:
    """Parse one ``--profile`` string (see module docstring). Raises UsageError naming the accepted forms."""
    s = str(text).strip().lower().replace(" ", "")
    if "," in s or ":" in s:
        parts = s.split(",")
        if len(parts) != 3:
            raise UsageError(f"bad profile {text!r}: the trtexec form needs exactly min,opt,max; {PROFILE_FORMS}")
        shapes = []
        for part in parts:
            m = _TRT_SHAPE_RE.match(part)
            if not m:
                raise UsageError(f"bad profile shape {part!r} in {text!r}; {PROFILE_FORMS}")
            shapes.append((m.group(1), *map(int, m.groups()[1:])))
        names = {sh[0] for sh in shapes}
        if len(names) != 1:
            raise UsageError(f"profile {text!r} names different inputs {sorted(names)}; use one input name")
        if any(sh[2] != 3 for sh in shapes):
            raise UsageError(f"profile {text!r}: channel dimension must be 3 (NxCxHxW)")
        (name, b0, _, h0, w0), (_, b1, _, h1, w1), (_, b2, _, h2, w2) = shapes
        return ResolutionProfile((h0, w0), (h2, w2), (h1, w1), BatchRange(b0, b1, b2), input_name=name)
    m = _RANGE_RE.match(s)
    if not m:
        raise UsageError(f"bad profile {text!r}; {PROFILE_FORMS}")
    g = m.groups()
    opt = _hw(g[4], g[5]) if g[4] else None
    return ResolutionProfile(_hw(g[0], g[1]), _hw(g[2], g[3]), opt, batch or BatchRange())
