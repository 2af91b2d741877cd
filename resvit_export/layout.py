"""The one place that knows the file names inside a build directory.

Every stage, command and the bundle ask a :class:`BuildLayout` for paths instead of spelling names, so a
rename happens here only. Names are relative to the build directory (``layout.rel(path)`` gives them back).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BuildLayout", "PRECISIONS", "precision_of_onnx"]

PRECISIONS = ("fp32", "fp16", "int8")

_PRECISION_ONNX_RE = re.compile(r"\.(fp16|int8)\.onnx$")


def precision_of_onnx(name: str | os.PathLike) -> str:
    """'model.fp16.onnx' -> 'fp16'; any other ONNX name -> 'fp32'."""
    m = _PRECISION_ONNX_RE.search(Path(name).name)
    return m.group(1) if m else "fp32"


@dataclass(frozen=True)
class BuildLayout:
    """Paths of the artifacts a build (or export/validate/calibrate) writes into ``root``."""

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    # --- export / rewrite / lint ---------------------------------------------------------------------
    @property
    def onnx(self) -> Path:
        """The raw dynamo export."""
        return self.root / "model.onnx"

    @property
    def rewritten_onnx(self) -> Path:
        """The FP32 graph that is deployed (rewritten for TensorRT, or a copy with --no-rewrite)."""
        return self.root / "model.rewritten.onnx"

    @property
    def export_record(self) -> Path:
        return self.root / "export.json"

    @property
    def rewrite_report(self) -> Path:
        return self.root / "rewrite.json"

    @property
    def lint_report(self) -> Path:
        return self.root / "lint.json"

    def precision_onnx(self, precision: str) -> Path:
        """model.fp16.onnx / model.int8.onnx; fp32 is the rewritten graph."""
        return self.rewritten_onnx if precision == "fp32" else self.root / f"model.{precision}.onnx"

    def precision_report(self, precision: str) -> Path:
        """precision.fp16.json / precision.int8.json: what the precision step wrote and verified."""
        return self.root / f"precision.{precision}.json"

    # --- validate --------------------------------------------------------------------------------------
    def parity(self, precision: str, ext: str) -> Path:
        """parity.json / parity.fp16.md / parity.int8.junit.xml ..."""
        suffix = "" if precision == "fp32" else f".{precision}"
        return self.root / f"parity{suffix}.{ext}"

    def engine_parity(self, ext: str) -> Path:
        """parity.engine.json / .md / .junit.xml / .png: a TensorRT engine checked against the reference set."""
        return self.root / f"parity.engine.{ext}"

    # --- reference set (PyTorch outputs the device compares its engine with; validate/reference.py) -----
    @property
    def reference_set(self) -> Path:
        """The recipes, input hashes and metadata (JSON); it names the two files below."""
        return self.root / "reference.json"

    @property
    def reference_outputs(self) -> Path:
        """PyTorch's FP32 outputs per case x input (.npz, loaded without pickle)."""
        return self.root / "reference.npz"

    @property
    def reference_inputs(self) -> Path:
        """Inputs shipped as arrays, only for a reference set written with ``ship_inputs``."""
        return self.root / "reference.inputs.npz"

    # --- CPU deployment (build --target cpu): its own folder, parity reports included ----------------------
    @property
    def cpu_dir(self) -> Path:
        """The CPU deployment: graphs, the selection report and their parity reports (validate writes there)."""
        return self.root / "cpu"

    def cpu_onnx(self, precision: str) -> Path:
        """cpu/model.onnx (the fastest fp32 graph on this CPU) / cpu/model.int8.onnx."""
        return self.cpu_dir / ("model.onnx" if precision == "fp32" else f"model.{precision}.onnx")

    @property
    def cpu_report(self) -> Path:
        """What was tried, measured and chosen for the CPU graphs (resvit_export.cpu.deploy)."""
        return self.cpu_dir / "cpu.json"

    # --- plan / engine / manifest / status -------------------------------------------------------------
    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def trtexec_script(self) -> Path:
        return self.root / "trtexec.sh"

    @property
    def timing_cache(self) -> Path:
        return self.root / "timing.cache"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def status(self) -> Path:
        """Written last by every command that writes into the directory; PASSED only for a complete run."""
        return self.root / "status.json"

    def rel(self, path: str | os.PathLike) -> str:
        """``path`` relative to the root when it lies inside it, else as given."""
        path = Path(path)
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)
