"""Run both sides of a parity check, PyTorch (the reference) and ONNX Runtime (the artifact), on the same feeds.

Each feed runs once per side and that run is both compared and timed. The two runtimes run at the same time,
each on its own share of the cores (``threads`` each, half the machine by default), because a ViT forward
does not scale to two threads on a shared 2-core machine nearly as well as two single-threaded forwards side
by side. ONNX Runtime runs in a worker thread (its ``run`` releases the GIL) or, ``isolated``, in a child
process that the worker thread waits for.

Latency: the first run at a new input shape pays for allocation and kernel set-up, so it is the shape's
warm-up; ``warm_latency`` (``parity_core``) gives every feed its shape's best later run (a compared one),
and says when a shape ran only once so that its only time is a cold one.
"""

from __future__ import annotations

import os
import threading
import time
from collections import abc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from resvit_export.bundle.device import parity_core as core

__all__ = ["SideRuns", "OnDemand", "run_both_sides", "run_artifact_side", "warm_latency", "default_threads",
           "all_threads"]

warm_latency = core.warm_latency  # shared with the device check (first run at a shape = its warm-up)


class OnDemand(abc.Sequence):
    """``make(j)`` for j in range(n), each made once, on first use, by whichever side asks first.

    Passed as the feeds, it moves input generation off the critical path: ONNX Runtime runs ahead of
    PyTorch (or its isolated child's feed file is written while PyTorch runs), so the worker thread makes
    the next inputs while PyTorch computes; numpy releases the GIL in its array loops.
    """

    def __init__(self, n: int, make: Callable[[int], object]):
        self._make = make
        self._items: list = [None] * n
        self._locks = [threading.Lock() for _ in range(n)]

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, j):
        if isinstance(j, slice):
            return [self[i] for i in range(*j.indices(len(self)))]
        with self._locks[j]:
            if self._items[j] is None:
                self._items[j] = self._make(j)
            return self._items[j]


def default_threads() -> int:
    """Threads per side: half the cores (the other half runs the other side), 1 to 4."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def all_threads() -> int:
    """Threads for ONNX Runtime when it runs alone (the reference was computed ahead): the whole machine, up to 8."""
    return max(1, min(8, os.cpu_count() or 2))


@dataclass
class SideRuns:
    """One entry per feed. ``got`` is ``{}`` and its seconds NaN where ONNX Runtime rejected the feed
    (``ort_errors`` maps the feed index to the message)."""

    ref: list[list[np.ndarray]]
    ref_s: list[float]
    got: list[dict[str, np.ndarray]]
    got_s: list[float]
    ort_errors: dict[int, str]


def run_both_sides(
    forward: Callable[[int], object],
    onnx_path,
    feeds: Sequence[dict[str, np.ndarray]],
    *,
    isolated: bool,
    threads: int,
    concurrent: bool = True,
    label: Callable[[int], str] = str,
    progress: Callable[[str], None] | None = None,
) -> SideRuns:
    """Run ``forward(j)`` (PyTorch, this thread) and ONNX Runtime on ``feeds[j]`` for every j.

    Args:
        forward: runs the reference on feed j; returns a tensor or a tuple/list of tensors.
        onnx_path: the artifact.
        feeds: ONNX Runtime feed dicts, in the same order.
        isolated: ONNX Runtime in a child process (a crash becomes InvalidArtifactError).
        threads: intra-op threads for each side.
        concurrent: both sides at once (default) or ONNX Runtime first, then PyTorch.
        label: names feed j in progress messages.
        progress: called with a description after every run of either side (from both threads).

    Raises:
        InvalidArtifactError: ONNX Runtime cannot load the artifact or crashed (PyTorch stops early then).
    """
    import torch

    from .runners import run_onnx_timed

    errors: list = []
    stop = threading.Event()
    lock = threading.Lock()

    def tick(text: str) -> None:
        if progress:
            with lock:
                progress(text)

    def artifact():
        return run_onnx_timed(onnx_path, feeds, isolated=isolated, threads=threads, errors=errors, stop=stop,
                              progress=lambda j: tick(f"onnxruntime {label(j)}"))

    prev_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if not concurrent:
            got, got_s = artifact()
            ref, ref_s = _reference_runs(forward, len(feeds), label, tick, lambda: False)
        else:
            with ThreadPoolExecutor(1, thread_name_prefix="resvit-ort") as pool:
                pending = pool.submit(artifact)
                try:
                    # an artifact that cannot load ends the check: stop spending time on the reference
                    ref, ref_s = _reference_runs(forward, len(feeds), label, tick,
                                                 lambda: pending.done() and pending.exception() is not None)
                except BaseException:
                    stop.set()
                    raise
                got, got_s = pending.result()
    finally:
        torch.set_num_threads(prev_threads)
    return SideRuns(ref, ref_s, got, got_s, dict(errors))


def run_artifact_side(
    ref: list[list[np.ndarray]],
    ref_s: list[float],
    onnx_path,
    feeds: Sequence[dict[str, np.ndarray]],
    *,
    isolated: bool,
    threads: int,
    label: Callable[[int], str] = str,
    progress: Callable[[str], None] | None = None,
    on_output: Callable[[int, dict], None] | None = None,
) -> SideRuns:
    """ONNX Runtime alone on ``feeds``, against reference outputs computed before (``ref[j]``, ``ref_s[j]``).
    ``on_output(j, outputs)`` as each feed's run ends (see ``runners.run_onnx_timed``)."""
    from .runners import run_onnx_timed

    errors: list = []
    got, got_s = run_onnx_timed(onnx_path, feeds, isolated=isolated, threads=threads, errors=errors,
                                progress=lambda j: progress and progress(f"onnxruntime {label(j)}"),
                                on_output=on_output)
    return SideRuns(ref, ref_s, got, got_s, dict(errors))


def _reference_runs(forward, n: int, label, tick, abandon: Callable[[], bool]):
    import torch

    from .reference_runs import as_arrays

    outs, secs = [], []
    with torch.inference_mode():
        for j in range(n):
            if abandon():
                break
            t0 = time.perf_counter()
            out = forward(j)
            secs.append(time.perf_counter() - t0)
            outs.append(as_arrays(out))
            tick(f"pytorch {label(j)}")
    return outs, secs
