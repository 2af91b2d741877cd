"""Measure graphs on this CPU and keep the fastest one that still matches the reference.

Every graph is first run on the probe inputs and compared with the reference (PyTorch eager) by the parity
matrix's own comparison (``validate.parity.compare_outputs``) at the given tolerances; one that fails is reported
and never timed. The rest are timed interleaved (``timing.interleaved``), one probe size at a time, and ranked by
the geometric mean over the probe sizes of their latency relative to the baseline (the first graph): one number
in which 224 px counts as much as 1792 px. A graph must beat the baseline by more than ``min_gain`` to replace it,
so noise never swaps in an extra artifact. ``also_time`` adds contenders that are timed in the same rounds but
never chosen (PyTorch eager), so the report holds their ratio from the same run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

__all__ = ["Measured", "Selection", "select_fastest"]


@dataclass
class Measured:
    name: str
    path: Path | None
    note: str
    parity: dict = field(default_factory=dict)  # "HxW" -> compare_outputs metrics (worst output)
    latency_ms: dict = field(default_factory=dict)  # "HxW" -> median ms
    relative: dict = field(default_factory=dict)  # "HxW" -> latency / baseline latency
    geo_relative: float | None = None
    rejected: str | None = None  # why ``accept`` turned it down after parity passed

    @property
    def passed(self) -> bool:
        return (self.path is not None and bool(self.parity) and not any(p["failures"] for p in self.parity.values())
                and self.rejected is None)

    def to_dict(self) -> dict:
        return {"name": self.name, "file": self.path.name if self.path else None, "note": self.note,
                "parity_passed": self.passed, "rejected": self.rejected,
                "parity": {k: {"max_abs": v["max_abs"], "cosine": v["cosine"], "top1": v["top1"],
                               "failures": v["failures"]} for k, v in self.parity.items()},
                "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()},
                "relative_to_baseline": {k: round(v, 4) for k, v in self.relative.items()},
                "geo_relative": None if self.geo_relative is None else round(self.geo_relative, 4)}


@dataclass
class Selection:
    winner: Measured
    rows: list[Measured]
    probe_sizes: list[tuple[int, int]]
    threads: int
    min_gain: float
    baseline: str
    also_timed: dict = field(default_factory=dict)  # name -> {"HxW": median ms}

    def winner_vs(self, name: str) -> dict[str, float]:
        """The winner's latency divided by ``name``'s (an ``also_timed`` contender) per probe size."""
        return {k: self.winner.latency_ms[k] / v for k, v in self.also_timed[name].items()}

    def to_dict(self) -> dict:
        return {"winner": self.winner.name, "threads": self.threads,
                "probe_sizes": [f"{h}x{w}" for h, w in self.probe_sizes], "min_gain": self.min_gain,
                "baseline": self.baseline, "candidates": [r.to_dict() for r in self.rows],
                "also_timed_ms": {n: {k: round(v, 3) for k, v in d.items()} for n, d in self.also_timed.items()},
                "winner_relative_to": {n: {k: round(v, 4) for k, v in self.winner_vs(n).items()}
                                       for n in self.also_timed}}


def select_fastest(graphs: Sequence, reference: Callable[[np.ndarray], np.ndarray],
                   inputs: Callable[[int, int], np.ndarray], probe_sizes: Sequence[tuple[int, int]], tolerances, *,
                   threads: int = 2, rounds: int = 5, budget_s: float = 30.0, min_gain: float = 0.03,
                   input_name: str = "pixels", also_time: dict[str, Callable[[np.ndarray], object]] | None = None,
                   accept: Callable[[Path], str | None] | None = None) -> Selection:
    """Rank ``graphs`` (objects with ``name``, ``path``, ``note``) on this CPU; the first that passes parity is the
    baseline.

    ``reference(x) -> logits`` is the fp32 truth; ``inputs(h, w)`` gives the probe batch at a size.
    ``accept(path)``, when given, runs on each graph that passed parity (before timing) and returns why it is
    refused, or None (the INT8 graphs' held-out agreement on trained weights).
    Raises ParityError (exit 3) when no graph passes parity (and ``accept``).
    """
    from resvit_export.validate.parity import compare_outputs

    from .session import cpu_session
    from .timing import interleaved

    rows = [Measured(g.name, g.path, g.note) for g in graphs]
    sessions = {}
    for r in rows:
        if r.path is None:
            continue
        try:
            sessions[r.name] = cpu_session(r.path, threads)
        except Exception as err:  # noqa: BLE001 - a graph ORT refuses is a finding about that candidate
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            r.note += f"; ONNX Runtime cannot load it: {first[:240]}"
            r.path = None
    feeds = {hw: inputs(*hw) for hw in probe_sizes}
    for hw, x in feeds.items():
        ref = {"logits": reference(x)}
        for r in rows:
            if r.name in sessions:
                got = sessions[r.name].run(None, {input_name: x})[0]
                r.parity[f"{hw[0]}x{hw[1]}"] = compare_outputs(ref, {"logits": got}, tolerances)
    for r in rows:
        if accept is not None and r.passed:
            r.rejected = accept(r.path)
    timed = [r for r in rows if r.passed]
    if not timed:
        worst = {r.name: next((p["failures"][0] for p in r.parity.values() if p["failures"]), r.rejected or r.note)
                 for r in rows}
        from resvit_export.errors import ParityError

        raise ParityError("no graph matches PyTorch at the parity tolerances: "
                         + "; ".join(f"{k}: {v}" for k, v in worst.items()))
    base = timed[0]
    also = also_time or {}
    extra: dict[str, dict[str, float]] = {n: {} for n in also}
    for hw, x in feeds.items():
        key = f"{hw[0]}x{hw[1]}"
        contenders = {r.name: (lambda s=sessions[r.name]: s.run(None, {input_name: x})) for r in timed}
        contenders.update({n: (lambda fn=fn: fn(x)) for n, fn in also.items()})
        lat = interleaved(contenders, rounds=rounds, budget_s=budget_s)
        for r in timed:
            r.latency_ms[key] = lat[r.name].median_ms
            r.relative[key] = lat[r.name].median_ms / lat[base.name].median_ms
        for n in also:
            extra[n][key] = lat[n].median_ms
    for r in timed:
        r.geo_relative = math.exp(sum(math.log(v) for v in r.relative.values()) / len(r.relative))
    best = min(timed, key=lambda r: r.geo_relative)
    winner = best if best.geo_relative < 1.0 - min_gain else base
    return Selection(winner, rows, list(probe_sizes), threads, min_gain, base.name, extra)
