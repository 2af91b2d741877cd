"""Interleaved timing: every contender once per round, rotating order, one warm-up, single shot for slow ones."""

from __future__ import annotations

import time

import pytest

from resvit_export.cpu.timing import interleaved


def test_rounds_rotate_and_warm_up_once():
    calls: list[str] = []
    lat = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b"), "c": lambda: calls.append("c")},
                      rounds=3, budget_s=60, min_total_s=0)
    assert calls == ["a", "b", "c",  # warm-ups
                     "a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(len(v.samples) == 3 for v in lat.values())


def test_short_runs_get_more_rounds_up_to_the_cap():
    lat = interleaved({"a": lambda: time.sleep(0.002)}, rounds=2, min_total_s=0.05, max_rounds=100)
    assert 10 <= len(lat["a"].samples) <= 25  # ~0.05 s / 2 ms, not the 2 asked for
    capped = interleaved({"a": lambda: None}, rounds=2, min_total_s=10, max_rounds=7)
    assert len(capped["a"].samples) == 7


def test_a_slow_warm_up_is_the_only_sample():
    lat = interleaved({"slow": lambda: time.sleep(0.05), "fast": lambda: None}, rounds=5, single_shot_s=0.02)
    assert [len(v.samples) for v in lat.values()] == [1, 1]
    assert lat["slow"].median_ms >= 50


def test_budget_stops_after_a_round_and_nothing_to_time_is_an_error():
    lat = interleaved({"a": lambda: time.sleep(0.01)}, rounds=100, budget_s=0.03, single_shot_s=1.0, min_total_s=0)
    assert 1 <= len(lat["a"].samples) < 10
    with pytest.raises(ValueError):
        interleaved({})
