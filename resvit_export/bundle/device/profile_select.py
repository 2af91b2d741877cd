"""Which optimization profile of an engine runs an input of a given shape: the ONE rule, host and device.

Ships in the bundle next to run_engine.py (standard library only: no numpy, torch or TensorRT), and the host
runner (resvit_export.trt.runner) imports this same file, so both sides always pick the same profile.

Rule: among the profiles whose [min, max] box contains the shape in every dimension, the one with the smallest
max volume. The planner's nested profiles share their minimum and grow their maximum, so the tightest one is the
one timed closest to the input (its opt shape lies inside the smallest box).
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["select_profile"]

Shape = Sequence[int]


def _fmt(shape: Shape) -> str:
    return "x".join(str(int(d)) for d in shape)


def _volume(shape: Shape) -> int:
    out = 1
    for d in shape:
        out *= int(d)
    return out


def select_profile(profiles: Sequence[tuple[Shape, Shape, Shape]], shape: Shape) -> int:
    """Index of the tightest profile containing ``shape``; ``profiles`` are (min, opt, max) NCHW tuples.

    Raises ValueError naming the shape and every profile's range when none contains it (or the ranks differ).
    """
    shape = tuple(int(d) for d in shape)
    best: int | None = None
    best_volume = 0
    for index, (lo, _opt, hi) in enumerate(profiles):
        if len(lo) != len(shape):
            raise ValueError(f"input shape {_fmt(shape)} has rank {len(shape)}, but profile {index} has rank "
                             f"{len(lo)} ({_fmt(lo)} .. {_fmt(hi)})")
        if all(int(a) <= d <= int(b) for a, d, b in zip(lo, shape, hi)):
            volume = _volume(hi)
            if best is None or volume < best_volume:
                best, best_volume = index, volume
    if best is None:
        listing = "; ".join(f"profile {i}: {_fmt(lo)} .. {_fmt(hi)}" for i, (lo, _o, hi) in enumerate(profiles))
        raise ValueError(f"input shape {_fmt(shape)} lies outside every optimization profile of this engine "
                         f"({listing}); resize the input into one of them or rebuild with a wider --profile")
    return best
