"""PyTorch's side of the parity matrix as data: computed once per build, ahead of the graph it will judge.

The reference outputs depend only on the model and the matrix (profiles, extra sizes, seed), both known
before export starts, so ``build`` computes them while export runs: :class:`ReferenceAhead` forks a child
process at the start of the build that runs every (case, input kind) forward on its own core and writes
the outputs to a file; the validate step then only runs ONNX Runtime, on all cores. Export is one
single-threaded Python process (measured: 33.3 s of CPU in 32.7 s wall for vitar_s 224-1792), so that
core was idle. The same :class:`ReferenceRuns` also serve the fp16/int8 and CPU-graph matrices of the
build: the reference for the same case and input is the same array.

Why a forked child and not a thread: measured on vitar_s 224-1792, a reference thread beside export took
54 s of wall for 26 s of CPU (export holds the GIL between the thread's ops) and slowed export by 3 s; the
forked child took 24 s, all of it during export, with outputs bit-identical to an in-process run at the
same thread count (export itself ran 2-7 s slower beside it in bench_build's runs: README Benchmarks).
The child also leaves each input and its sha256 (in /dev/shm where there is one), so ONNX Runtime gets the
arrays PyTorch saw without the parent making them again. Fork, not spawn: the child inherits the very model
object the build validates (a ``build(model=...)`` object or a file-defined class could not be rebuilt in a fresh interpreter), and no
weights are pickled or re-read. Where fork is not available, on one core, or where the reference runs on
CUDA, nothing is started and validate runs both sides itself, as before.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .inputs import INPUT_KINDS, case_seed, input_sha256, make_inputs
from .matrix import Case, resolution_matrix

__all__ = ["Job", "ReferenceRuns", "ReferenceAhead", "matrix_jobs", "plan_jobs", "as_arrays"]


@dataclass(frozen=True)
class Job:
    """One compared forward: a matrix case with one input kind and the seed its input is made from."""

    case: Case
    kind: str  # input kind: gaussian | synthetic
    seed: int

    @property
    def key(self) -> str:
        c = self.case
        return f"{self.kind}:{c.name}:{c.batch}x{c.h}x{c.w}:{self.seed}"

    def make_input(self) -> np.ndarray:
        return make_inputs(self.kind, self.case.batch, self.case.h, self.case.w, self.seed)


def matrix_jobs(cases: Sequence[Case], kinds: Sequence[str], seed: int) -> list[Job]:
    """The forwards of a matrix, a case's kinds in a row (the first warms its shape up)."""
    return [Job(c, k, case_seed(f"{k}:{c.name}", seed)) for c in cases for k in kinds]


@dataclass
class ReferenceRuns:
    """PyTorch's outputs per job key (a list of arrays, in output order), the seconds of each forward, and
    how they were computed (``how``, ``threads``, ``device``: the report's timing note repeats them).

    ``inputs``/``input_sha256``: where the computing process left each job's input (``.npy``) and its hash, so
    ONNX Runtime is fed the very arrays PyTorch saw without making them again; absent keys are regenerated.
    """

    outputs: dict[str, list[np.ndarray]]
    seconds: dict[str, float]
    device: str = "cpu"
    threads: int = 1
    how: str = "in validate, beside ONNX Runtime"
    busy_s: float = 0.0  # wall seconds of the process that computed them (its own start-up included)
    inputs: dict[str, Path] = field(default_factory=dict)
    input_sha256: dict[str, str] = field(default_factory=dict)

    def covers(self, jobs: Sequence[Job]) -> bool:
        return all(j.key in self.outputs for j in jobs)

    def input_of(self, job: Job) -> np.ndarray:
        path = self.inputs.get(job.key)
        if path is not None and path.is_file():
            return np.load(path, mmap_mode="r", allow_pickle=False)  # page cache: no copy, no generation
        return job.make_input()

    def merged_with(self, jobs: Sequence[Job], outputs: Sequence[list[np.ndarray]],
                    seconds: Sequence[float]) -> "ReferenceRuns":
        """These runs plus ``jobs``' (computed elsewhere with the same model and device)."""
        outs = dict(self.outputs)
        secs = dict(self.seconds)
        for job, out, s in zip(jobs, outputs, seconds):
            outs[job.key], secs[job.key] = out, s
        return dataclasses.replace(self, outputs=outs, seconds=secs)


def as_arrays(out) -> list[np.ndarray]:
    return [o.detach().float().cpu().numpy() for o in (out if isinstance(out, (tuple, list)) else (out,))]


# Inputs the child leaves for the parent, at most this many bytes (vitar_s 224-1792: 0.46 GB); above it the
# parent makes them again. In /dev/shm where there is one: RAM, no disk write-back.
_SHARED_INPUT_BYTES = 4 << 30


class ReferenceAhead:
    """A forked child computing ``jobs``' reference outputs while the parent goes on (see the module docstring).

    ``start`` returns None where it cannot help (no fork, one core, CUDA reference). ``result()`` waits for
    the child and returns its ReferenceRuns, or None when it failed (``failure`` says why; the caller then
    computes the reference itself). ``close()`` kills a child still running and removes its files (the
    inputs the runs point to): call it when the build is over.
    """

    def __init__(self, pid: int, workdir: Path, jobs: Sequence[Job], threads: int):
        self._pid = pid
        self._dir = workdir
        self.jobs = list(jobs)
        self.threads = threads
        self.failure: str | None = None
        self._runs: ReferenceRuns | None = None
        self._waited = False

    @classmethod
    def start(cls, model, jobs: Sequence[Job], *, threads: int = 1) -> "ReferenceAhead | None":
        import torch

        if not hasattr(os, "fork") or (os.cpu_count() or 1) < 2 or not jobs:
            return None
        if any(p.device.type != "cpu" for p in model.parameters()):
            return None
        shm = Path("/dev/shm")
        workdir = Path(tempfile.mkdtemp(prefix="resvit-reference-",
                                        dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None))
        share = sum(j.case.batch * 3 * j.case.h * j.case.w * 4 for j in jobs) <= _SHARED_INPUT_BYTES
        model = model.float().eval()
        torch.from_numpy(np.zeros(1, np.float32))  # torch's lazy init happens here, not first in the child
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: compute, write, leave without running the parent's exit handlers
            code = 1
            try:
                _child_main(model, jobs, threads, workdir, share)
                code = 0
            except BaseException:  # noqa: BLE001 - reported to the parent through the file system
                (workdir / "error.txt").write_text(traceback.format_exc())
            finally:
                os._exit(code)
        return cls(pid, workdir, jobs, threads)

    def result(self) -> ReferenceRuns | None:
        if self._waited:
            return self._runs
        self._waited = True
        _, status = os.waitpid(self._pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err = self._dir / "error.txt"
            last = err.read_text().strip().splitlines()[-1] if err.is_file() else f"exit status {code}"
            self.failure = f"reference child failed ({last})"
            return None
        self._runs = self._load()
        return self._runs

    def close(self) -> None:
        if not self._waited:
            import signal

            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self._pid, 0)
            self._waited = True
            self.failure = "cancelled"
        shutil.rmtree(self._dir, ignore_errors=True)

    def _load(self) -> ReferenceRuns:
        with np.load(self._dir / "outputs.npz", allow_pickle=False) as data:
            counts, seconds, busy = data["counts"], data["seconds"], float(data["busy"])
            digests = [str(d) for d in data["sha256"]]
            outs = {job.key: [data[f"o{j}_{k}"] for k in range(int(counts[j]))] for j, job in enumerate(self.jobs)}
        inputs = {job.key: self._dir / f"x{j}.npy" for j, job in enumerate(self.jobs)
                  if (self._dir / f"x{j}.npy").is_file()}
        return ReferenceRuns(outs, {job.key: float(seconds[j]) for j, job in enumerate(self.jobs)}, "cpu",
                             self.threads, "ahead: a forked child during export", busy, inputs,
                             {job.key: digests[j] for j, job in enumerate(self.jobs)})


def _child_main(model, jobs: Sequence[Job], threads: int, workdir: Path, share_inputs: bool) -> None:
    import torch

    started = time.monotonic()
    torch.set_num_threads(threads)
    arrays: dict[str, np.ndarray] = {}
    counts, seconds, digests = [], [], []
    with torch.inference_mode():
        for j, job in enumerate(jobs):
            x = job.make_input()
            t0 = time.perf_counter()
            out = as_arrays(model(torch.from_numpy(x)))
            seconds.append(time.perf_counter() - t0)
            counts.append(len(out))
            digests.append(input_sha256(x))
            arrays.update({f"o{j}_{k}": o for k, o in enumerate(out)})
            if share_inputs:
                np.save(workdir / f"x{j}.partial.npy", x)
                (workdir / f"x{j}.partial.npy").rename(workdir / f"x{j}.npy")
    tmp = workdir / "outputs.partial.npz"
    np.savez(tmp, counts=np.asarray(counts), seconds=np.asarray(seconds), sha256=np.asarray(digests),
             busy=np.asarray(time.monotonic() - started), **arrays)
    tmp.rename(workdir / "outputs.npz")


def plan_jobs(profiles, rule, extra_resolutions=(), batch_sizes=None, kinds: Sequence[str] = INPUT_KINDS,
              seed: int = 0) -> list[Job]:
    """Every forward of the un-merged matrix (merging needs the graph; a merged case's runs go unused)."""
    return matrix_jobs(resolution_matrix(profiles, rule, extra_resolutions, batch_sizes), kinds, seed)
