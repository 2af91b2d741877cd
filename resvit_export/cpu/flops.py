"""FLOPs of the nodes ONNX Runtime actually executed, read from its profiler.

A static count over the ONNX file cannot tell which branch of an ``If`` runs (ViTAR's gated ATM stages) and
does not see ORT's fusions; the profiler records every kernel that ran, subgraph nodes included, with its input
and output shapes. Counted like ``models.flops.count_flops``: 2 FLOPs per multiply-accumulate, matmuls and
convolutions only (fp32 and their integer/quantised forms alike), so the two counts are comparable.

ORT lists initializers (weights) apart from the inputs in the profile, so the reduced dimension K of a matmul is
read off its first input: ``A [..., M, K]``, or ``A [..., K, M]`` when ``A``'s second-last dim is not the
output's M (a transposed A, as ORT's FusedMatMul may take it).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["ExecutedFlops", "executed_flops", "MATMUL_OPS", "CONV_OPS"]

# op name in the profile -> index of the activation input whose last dims are [M, K]
MATMUL_OPS = {"MatMul": 0, "FusedMatMul": 0, "Gemm": 0, "MatMulInteger": 0, "MatMulIntegerToFloat": 0,
              "DynamicQuantizeMatMul": 0, "QLinearMatMul": 0, "FusedGemm": 0, "QGemm": 0}
CONV_OPS = ("Conv", "FusedConv", "QLinearConv", "ConvInteger", "NhwcFusedConv")


@dataclass
class ExecutedFlops:
    total: int
    by_op: dict[str, int] = field(default_factory=dict)
    uncounted: list[str] = field(default_factory=list)  # compute ops seen with no formula here (none expected)
    time_us_by_op: dict[str, int] = field(default_factory=dict)  # kernel time per op type (every op, profiled run)

    @property
    def matmul_share(self) -> float:
        """Fraction of the kernel time spent in counted (matmul/conv) kernels."""
        total = sum(self.time_us_by_op.values())
        return sum(self.time_us_by_op.get(op, 0) for op in self.by_op) / total if total else 0.0

    def to_dict(self) -> dict:
        return {"total": self.total, "by_op": dict(self.by_op), "uncounted": list(self.uncounted),
                "time_us_by_op": dict(self.time_us_by_op), "matmul_time_share": round(self.matmul_share, 4)}


def _shapes(arg) -> list[list[int]]:
    return [next(iter(d.values())) for d in arg or []]


def _matmul_flops(ins: list[list[int]], out: list[int]) -> int:
    a = ins[0]
    k = a[-1] if len(a) < 2 or len(out) < 2 or a[-2] == out[-2] else a[-2]
    return 2 * math.prod(out) * k


def _conv_flops(ins: list[list[int]], out: list[int]) -> int | None:
    weights = [s for s in ins[1:] if len(s) == len(out)]
    if not weights:
        return None  # weights not listed: no way to know the kernel
    return 2 * math.prod(out) * math.prod(weights[0][1:])


def flops_from_profile(events: list[dict]) -> ExecutedFlops:
    by_op: Counter = Counter()
    time_us: Counter = Counter()
    uncounted: set[str] = set()
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        args = e.get("args", {})
        op = args.get("op_name", "")
        if op != "If":  # an If's time contains its branch's kernels, which are listed themselves
            time_us[op] += int(e.get("dur", 0))
        ins, outs = _shapes(args.get("input_type_shape")), _shapes(args.get("output_type_shape"))
        if op in MATMUL_OPS and ins and outs:
            by_op[op] += _matmul_flops(ins, outs[0])
        elif op in CONV_OPS and outs:
            n = _conv_flops(ins, outs[0])
            if n is None:
                uncounted.add(op)
            else:
                by_op[op] += n
        elif op in ("Attention", "MultiHeadAttention", "GroupQueryAttention"):
            uncounted.add(op)
    return ExecutedFlops(int(sum(by_op.values())), dict(by_op), sorted(uncounted), dict(time_us))


def _last_run(events: list[dict]) -> list[dict]:
    """The events of the profiled session's last ``model_run`` (earlier runs were warm-ups)."""
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    if not runs:
        return events
    start = runs[-1]["ts"]
    end = start + runs[-1].get("dur", 0)
    return [e for e in events if start <= e.get("ts", -1) <= end]


def executed_flops(onnx_path: str | os.PathLike, feeds: dict[str, np.ndarray], *, threads: int = 1,
                   level: str = "all", runs: int = 1) -> ExecutedFlops:
    """Run ``onnx_path`` ``runs`` times on ``feeds`` with ORT's profiler on; count the matmul/conv FLOPs (and the
    per-op kernel time) of the last run, so with ``runs`` >= 2 the times are not first-run times."""
    from .session import cpu_session

    with tempfile.TemporaryDirectory(prefix="resvit-flops-") as tmp:
        sess = cpu_session(onnx_path, threads, level=level, profile_prefix=Path(tmp) / "ort")
        for _ in range(max(1, runs)):
            sess.run(None, feeds)
        profile = sess.end_profiling()
        events = json.loads(Path(profile).read_text())
    return flops_from_profile(_last_run(events))
