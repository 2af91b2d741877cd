"""Interleaved latency rounds: every contender runs once per round, in a rotating order.

On a shared, noisy machine only ratios measured side by side mean anything. Each round runs every contender
once; the order rotates from round to round, so no contender always runs right after the same neighbour (cache
and frequency effects). One warm-up per contender first. The median of each contender's samples is its figure.
A warm-up that alone exceeds ``single_shot_s`` ends the measurement after it for every contender: at that scale
(DeiT-S at 1792 px, ~25 s) first-run overhead is noise and a second round would double the cost. Short runs get
more rounds (up to ``max_rounds``), so each contender is timed for about ``min_total_s``: a median of three
4 ms runs on a shared machine says little.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Latency", "interleaved"]


@dataclass
class Latency:
    name: str
    samples: list[float] = field(default_factory=list)  # seconds

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples) * 1e3

    def to_dict(self) -> dict:
        return {"median_ms": round(self.median_ms, 3), "samples_ms": [round(s * 1e3, 3) for s in self.samples]}


def _once(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int = 5, budget_s: float = 60.0,
                single_shot_s: float = 5.0, min_total_s: float = 0.5, max_rounds: int = 100) -> dict[str, Latency]:
    """Median latency of each contender over at least ``rounds`` interleaved rounds (more for short runs, see the
    module docstring), stopping after the round that passes ``budget_s``."""
    if not contenders:
        raise ValueError("nothing to time")
    names = list(contenders)
    out = {n: Latency(n) for n in names}
    warm = {n: _once(contenders[n]) for n in names}
    if max(warm.values()) > single_shot_s:
        for n in names:
            out[n].samples.append(warm[n])
        return out
    slowest = max(max(warm.values()), 1e-6)
    rounds = max(1, rounds, min(max_rounds, math.ceil(min_total_s / slowest)))
    start = time.perf_counter()
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            out[n].samples.append(_once(contenders[n]))
        if time.perf_counter() - start > budget_s:
            break
    return out
