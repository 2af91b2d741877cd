"""Make the CPU deployment graphs of a build: the fastest fp32 graph and the fastest INT8 graph, both measured.

    TensorRT graph (+ raw export) --candidates--> checked against PyTorch, timed --> model.cpu.onnx
      fastest quantisable candidate --quantize (dynamic | static QDQ | static QOperator)--> timed --> model.cpu.int8.onnx

Both choices are made on the machine that runs the build, at probe sizes from the profile (capped: see
``PROBE_CAP``), and every graph must first match PyTorch eager on builtin photos at the precision's parity
tolerances. The full parity matrix then runs on the two chosen graphs (the build's validate steps). What was
tried, measured and chosen is returned as ``CpuGraphs`` (``to_dict`` is the ``cpu.json`` report).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from resvit_export.io import atomic_path

from .select import Selection

__all__ = ["CpuGraphs", "CpuDeployment", "make_cpu_graphs", "deploy_cpu", "probe_sizes", "PROBE_CAP", "CALIB_CAP"]

# Probe sizes stop here: one S-size DeiT forward at 1792 px takes ~25 s on 2 cores, and graph-vs-graph ratios at
# 896 px already sit in the regime where the matmuls dominate. The benchmarks measure the whole range.
PROBE_CAP = 896
# ORT's calibrator keeps every quantised op's inputs of a batch in memory (attention scores grow with tokens²).
CALIB_CAP = 448


@dataclass
class CpuGraphs:
    fp32: Selection
    int8: Selection | None
    fp32_path: Path
    int8_path: Path | None
    int8_source: str  # which fp32 graph was quantised
    int8_refused: str | None = None  # why no INT8 graph was written although one was asked for

    def to_dict(self) -> dict:
        return {"fp32": self.fp32.to_dict(), "fp32_onnx": self.fp32_path.name,
                "int8": self.int8.to_dict() if self.int8 else None, "int8_refused": self.int8_refused,
                "int8_onnx": self.int8_path.name if self.int8_path else None, "int8_source": self.int8_source}


def probe_sizes(profiles: Sequence, patch: int = 16, cap: int = PROBE_CAP) -> list[tuple[int, int]]:
    """Square sides at the profiles' smallest min side, their largest max side (both capped at ``cap``) and the
    geometric middle, rounded to the patch."""
    lo = min(min(p.min) for p in profiles)
    hi = min(max(max(p.max) for p in profiles), cap)
    mid = max(lo, min(hi, int(round(math.sqrt(lo * hi) / patch)) * patch))
    return [(s, s) for s in sorted({lo, mid, hi})]


def _copy(src: Path, dst: Path) -> Path:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def make_cpu_graphs(model, deploy_onnx: str | os.PathLike, out_fp32: str | os.PathLike,
                    out_int8: str | os.PathLike | None, profiles: Sequence, *, raw_onnx: str | os.PathLike | None = None,
                    threads: int = 2, rounds: int = 5, sizes: Sequence[tuple[int, int]] | None = None,
                    calibration: Sequence[np.ndarray] | None = None, accept_int8=None,
                    extra_fp32: Sequence = ()) -> CpuGraphs:
    """Choose and write the CPU graphs for ``model`` (the PyTorch reference of ``deploy_onnx``).

    ``out_int8`` None skips INT8. ``calibration``: batches for the static INT8 forms (default: the builtin photos
    at the profile's min and ``CALIB_CAP``). ``sizes``: probe sizes (default ``probe_sizes(profiles)``).
    ``accept_int8(path) -> reason | None`` turns down INT8 graphs that pass parity but fail an accuracy gate.
    ``extra_fp32``: more fp32 candidates (``candidates.Candidate``) of the same model, timed with the rest.
    """
    import torch

    from resvit_export.data.photos import builtin_photos, photo_inputs
    from resvit_export.errors import ParityError
    from resvit_export.validate.parity import default_tolerances

    from .candidates import QUANTIZABLE, fp32_candidates
    from .int8 import INT8_FORMS, quantize_cpu
    from .select import select_fastest

    patch = model.size_rule.patch_size
    sizes = list(sizes or probe_sizes(profiles, patch))
    spec = model.deploy_spec()
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)  # eager reference on the same cores as ORT

    def reference(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    def inputs(h: int, w: int) -> np.ndarray:
        return photo_inputs(2, h, w, seed=0)

    try:
        with tempfile.TemporaryDirectory(prefix="resvit-cpu-") as tmp:
            work = Path(tmp)
            cands = fp32_candidates(deploy_onnx, work, raw_onnx=raw_onnx, num_heads=spec.num_heads,
                                    hidden_size=spec.dim, extra=extra_fp32)
            fp32 = select_fastest(cands, reference, inputs, sizes, default_tolerances("fp32"), threads=threads,
                                  rounds=rounds, also_time={"pytorch-eager": reference})
            fp32_path = _copy(fp32.winner.path, Path(out_fp32))
            int8 = int8_path = None
            # quantise the fastest graph whose matmuls the quantisers can see
            quantizable = [r for r in fp32.rows if r.passed and r.name in QUANTIZABLE]
            if not quantizable:
                raise ParityError(f"no quantisable fp32 graph ({', '.join(QUANTIZABLE)}) passed parity")
            source = min(quantizable, key=lambda r: r.geo_relative)
            if out_int8 is not None:
                if calibration is None:
                    lo = min(min(p.min) for p in profiles)
                    calibration = [builtin_photos(s, s)[i:i + 3] for s in sorted({lo, max(lo, CALIB_CAP)})
                                   for i in range(0, 9, 3)]
                graphs = [quantize_cpu(source.path, work / f"cpu.int8.{form}.onnx", form, calibration)
                          for form in INT8_FORMS]
                try:
                    int8 = select_fastest(graphs, reference, inputs, sizes, default_tolerances("int8"),
                                          threads=threads, rounds=rounds, min_gain=0.0,
                                          also_time={"pytorch-eager": reference}, accept=accept_int8)
                except ParityError as err:  # no INT8 form is good enough: ship fp32 only, and say why
                    return CpuGraphs(fp32, None, fp32_path, None, source.name, f"no INT8 form accepted: {err}")
                int8_path = _copy(int8.winner.path, Path(out_int8))
            return CpuGraphs(fp32, int8, fp32_path, int8_path, source.name)
    finally:
        torch.set_num_threads(saved_threads)


@dataclass
class CpuDeployment:
    """The CPU graphs of a build, proven: the parity matrix on both, held-out agreement where weights are trained."""

    graphs: CpuGraphs
    parity: dict[str, dict]  # "fp32" / "int8" -> ParityReport.summary_dict()
    agreement: object | None = None  # accuracy.Agreement on the trained reference weights, else None
    notes: list[str] = field(default_factory=list)  # why something was not made or measured
    agreement_by_graph: dict = field(default_factory=dict)  # every INT8 form's Agreement, shipped or not

    def to_dict(self) -> dict:
        if self.agreement is not None:
            heldout = self.agreement.to_dict()
        elif self.agreement_by_graph:
            heldout = "measured on every INT8 form (int8_agreement_by_graph); none reached the minimum"
        else:
            heldout = ("not measured: the weights are not a trained reference run (random-weight agreement means "
                       "nothing)")
        return {**self.graphs.to_dict(), "parity": self.parity, "notes": list(self.notes),
                "int8_heldout_agreement": heldout,
                "int8_agreement_by_graph": {k: v.to_dict() for k, v in self.agreement_by_graph.items()}}

    def summary_line(self) -> str:
        fp32, int8 = self.graphs.fp32, self.graphs.int8
        line = f"fp32 {fp32.winner.name} (geo {fp32.winner.geo_relative:.2f}x the TensorRT graph)"
        if int8 is not None:
            worst = max(int8.winner_vs("pytorch-eager").values())
            line += f"; int8 {int8.winner.name} (<= {worst:.2f}x eager's time at the probe sizes)"
        if self.agreement is not None:
            line += f"; held-out top-1 agreement {self.agreement.worst:.3f}"
        if self.graphs.int8_refused:
            line += f"; {self.graphs.int8_refused}"
        return line


def deploy_cpu(model, layout, profiles: Sequence, *, deploy_onnx: str | os.PathLike,
               raw_onnx: str | os.PathLike | None = None, int8: bool = True, seed: int = 0,
               extra_resolutions: Sequence = (), heldout: tuple[Sequence[tuple[int, int]], int] | None = None,
               heldout_batch: int = 1, threads: int = 2, notes: Sequence[str] = (), extra_fp32: Sequence = (),
               reference=None) -> CpuDeployment:
    """Make the CPU graphs into ``layout.cpu_dir`` and prove them: the parity matrix (fp32 and int8 tolerances,
    reports in the same folder) and, with ``heldout=(sizes, n)``, INT8 top-1 agreement on held-out scenes, the
    INT8 graph run ``heldout_batch`` images at a time (the deployment's batch: a dynamic INT8 graph's output for an
    image depends on its batch-mates).
    ``notes`` (e.g. why INT8 was not made) are kept in ``cpu.json``. ``reference``: PyTorch's outputs for the
    matrix, when the build already has them (``validate.reference_runs.ReferenceRuns``).

    An INT8 graph that no form makes good enough (parity, or agreement below 0.99) is not written: ``cpu.json``
    and the summary say why. Raises ParityError (exit 3) when a written graph breaches its parity matrix.
    """
    from resvit_export.errors import ParityError
    from resvit_export.io import write_json_atomic
    from resvit_export.validate.parity import validate_onnx

    layout.cpu_dir.mkdir(parents=True, exist_ok=True)
    agreements: dict[str, object] = {}  # INT8 candidate file name -> its held-out Agreement

    def accept_int8(path: Path) -> str | None:
        """The fastest INT8 form is kept only if it agrees with PyTorch fp32 on held-out images (trained weights)."""
        from .accuracy import heldout_int8_agreement

        sizes, n = heldout
        found = agreements[path.name] = heldout_int8_agreement(model, path, sizes, n, threads=threads,
                                                               batch=heldout_batch)
        return None if found.passed else f"held-out top-1 agreement {found.worst:.3f} < {found.minimum}"

    graphs = make_cpu_graphs(model, deploy_onnx, layout.cpu_onnx("fp32"), layout.cpu_onnx("int8") if int8 else None,
                             profiles, raw_onnx=raw_onnx, threads=threads,
                             accept_int8=accept_int8 if heldout is not None else None, extra_fp32=extra_fp32)
    parity = {}
    result = CpuDeployment(graphs, parity, notes=list(notes), agreement_by_graph=agreements)
    if graphs.int8 is not None and graphs.int8.winner.path.name in agreements:
        result.agreement = agreements[graphs.int8.winner.path.name]
    for precision, path in (("fp32", graphs.fp32_path), ("int8", graphs.int8_path)):
        if path is None:
            continue
        report = validate_onnx(model, path, profiles, precision=precision, seed=seed,
                               extra_resolutions=extra_resolutions, out_dir=layout.cpu_dir, isolated=True,
                               reference=reference)
        parity[precision] = report.summary_dict()
        if not report.passed:
            write_json_atomic(layout.cpu_report, result.to_dict())
            raise ParityError(f"CPU {precision} graph ({layout.rel(path)}) parity FAILED: {report.failure_line()}")
    write_json_atomic(layout.cpu_report, result.to_dict())
    return result
