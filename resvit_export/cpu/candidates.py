"""fp32 graphs worth timing on a CPU, made from the build's graphs; which one wins is measured (``select.py``).

| name | what it is | why it might win |
|---|---|---|
| ``tensorrt-graph`` | the rewritten graph the TensorRT path ships | nothing to add: no second artifact |
| ``raw-export`` | the dynamo export before the TensorRT rewrites | ``resize_antialias`` turns ORT's antialiased Resize into its slower plain cubic one |
| ``ort-extended`` | ORT's own EXTENDED-level graph, saved (its offline mode) | fusions baked in; ORT applies its layout (ALL-level) passes at load as usual |
| ``ort-transformers`` | ``onnxruntime.transformers.optimizer`` (model type ``vit``) | SkipLayerNorm/BiasGelu/attention fusions written into the file |
| ``ort-mha`` | the TensorRT graph with attention fused to ORT's MultiHeadAttention (``fuse_attention.py``) | flash attention: no N² score matrix at large sizes |

The ALL level is not saved: ORT's graph-optimisation guide says offline optimisation must run with the options
and hardware the model will run on, and the layout passes rewrite for this CPU's vector width
(https://onnxruntime.ai/docs/performance/model-optimizations/graph-optimizations.html). EXTENDED fusions are CPU
execution provider ops that run on any x86/ARM CPU build of ORT. A candidate that cannot be made for a graph is
kept with the reason (``path`` None), so the selection report says what was tried.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

__all__ = ["Candidate", "fp32_candidates", "CANDIDATE_NAMES", "QUANTIZABLE"]

CANDIDATE_NAMES = ("tensorrt-graph", "raw-export", "ort-extended", "ort-transformers", "ort-mha")
# Graphs of standard ops plus at most MultiHeadAttention: ORT's quantisers find every MatMul in them (the EXTENDED
# and transformer-optimised graphs hide matmuls in FusedMatMul/Attention nodes the quantisers skip).
QUANTIZABLE = ("tensorrt-graph", "raw-export", "ort-mha")


@dataclass(frozen=True)
class Candidate:
    name: str
    path: Path | None  # None: could not be made (see note)
    note: str

    def to_dict(self) -> dict:
        return {"name": self.name, "path": str(self.path) if self.path else None, "note": self.note}


def _ort_extended(src: Path, dst: Path) -> Candidate:
    from .session import cpu_session

    cpu_session(src, 1, level="extended", optimized_path=dst)
    return Candidate("ort-extended", dst, "ORT EXTENDED-level graph saved offline")


def _ort_transformers(src: Path, dst: Path, num_heads: int, hidden_size: int) -> Candidate:
    from onnxruntime.transformers import optimizer

    quiet = logging.getLogger("onnxruntime.transformers")
    was, quiet.disabled = quiet.disabled, True  # it logs every fusion attempt at WARNING
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            opt = optimizer.optimize_model(str(src), model_type="vit", num_heads=num_heads, hidden_size=hidden_size,
                                           opt_level=0)
    finally:
        quiet.disabled = was
    fused = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
    if not fused:
        return Candidate("ort-transformers", None, "the transformer optimizer fused nothing in this graph")
    opt.save_model_to_file(str(dst))
    return Candidate("ort-transformers", dst, "fused " + ", ".join(f"{v} {k}" for k, v in sorted(fused.items())))


def _ort_mha(src: Path, dst: Path, num_heads: int) -> Candidate:
    from .fuse_attention import fuse_attention

    n = fuse_attention(src, dst, num_heads or None)
    if not n:
        return Candidate("ort-mha", None, "no attention matched the MatMul-Softmax-MatMul pattern")
    return Candidate("ort-mha", dst, f"{n} attention(s) fused to com.microsoft.MultiHeadAttention")


def fp32_candidates(deploy_onnx: str | os.PathLike, workdir: str | os.PathLike, *,
                    raw_onnx: str | os.PathLike | None = None, num_heads: int = 0,
                    hidden_size: int = 0, extra: Sequence[Candidate] = ()) -> list[Candidate]:
    """Every candidate of ``CANDIDATE_NAMES`` for ``deploy_onnx`` (the TensorRT graph), files in ``workdir``, then
    ``extra`` (graphs of the same model made elsewhere, e.g. ViTAR's always-compute form next to its gated one)."""
    deploy, work = Path(deploy_onnx), Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    out = [Candidate("tensorrt-graph", deploy, "the rewritten graph the TensorRT path ships")]
    if raw_onnx is not None and Path(raw_onnx).is_file():
        out.append(Candidate("raw-export", Path(raw_onnx), "the dynamo export before the TensorRT rewrites"))
    else:
        out.append(Candidate("raw-export", None, "no raw export given"))
    makers = [("ort-extended", lambda: _ort_extended(deploy, work / "cpu.ort_extended.onnx"))]
    if num_heads and hidden_size:
        makers.append(("ort-transformers",
                       lambda: _ort_transformers(deploy, work / "cpu.ort_transformers.onnx", num_heads, hidden_size)))
    else:
        out.append(Candidate("ort-transformers", None, "model widths unknown"))
    makers.append(("ort-mha", lambda: _ort_mha(deploy, work / "cpu.ort_mha.onnx", num_heads)))
    for name, make in makers:
        try:
            out.append(make())
        except Exception as err:  # noqa: BLE001 - a failed candidate is a finding, not a failed build
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            out.append(Candidate(name, None, f"could not be made: {type(err).__name__}: {first[:200]}"))
    return out + list(extra)
