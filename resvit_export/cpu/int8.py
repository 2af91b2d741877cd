"""INT8 graphs for ONNX Runtime on CPU, made with ONNX Runtime's own quantisation tools.

Unlike ``precision/int8.py`` (Q/DQ for TensorRT: symmetric int8 activations, no output quantisation), these are
shaped for ORT's CPU kernels, which use u8 activations x s8 weights (the VNNI ``vpdpbusd`` instruction's operand
types) and fuse DequantizeLinear -> MatMul -> QuantizeLinear into QLinearMatMul:

| form | tool | activations | where the scales come from |
|---|---|---|---|
| ``dynamic`` | ``quantize_dynamic`` | u8, scale computed per call from the tensor | nothing to calibrate |
| ``static-qdq`` | ``quantize_static``, QDQ | u8 asymmetric, fixed | calibration images |
| ``static-qoperator`` | ``quantize_static``, QOperator (QLinearMatMul ...) | u8 asymmetric, fixed | calibration images |

Every form first goes through ORT's ``quant_pre_process`` (its quantization guide's pre-processing step: shape
inference and ORT's basic graph optimisations, constant folding included): the quantisers only see weights that
are initializers, and the export leaves ``Transpose(weight)`` nodes inside ``If`` branches where the rewrite's
1 MiB folding cap keeps them (gated ViTAR's 1536x384 FFN weights). The dynamic form also quantises the MatMuls
inside ``If`` branches (ORT's ``EnableSubgraph``, dynamic mode only; the static forms leave them fp32). Measured
on vitar_s (random init, 2 cores, 2026-12-01, interleaved with eager): with the ATM stages' MatMuls left fp32,
INT8 ran 1.43x / 1.47x faster than eager at 1344 / 1792 px; with them quantised, 1.70x / 1.68x. The patch
embedding ``Conv`` stays fp32: quantised dynamically (ConvInteger) the same graph fell to 1.32x / 1.16x.

Weights are s8, symmetric, per output channel, in every form, quantised to 7 bits (``reduce_range``). Measured
on the trained vitar_test weights (200 held-out scenes at 64 and 256 px, 2026-12-01, 2-core AMD EPYC): with 8-bit
weights, quantising any ONE of several linear layers alone dropped top-1 agreement with PyTorch fp32 to 0.94, and
all of them to 0.89-0.945; with 7-bit weights, all of them agree on 0.99-0.995. Coarser weights doing better is
the signature of the u8 x s8 saturation that ONNX Runtime's quantization guide gives as the reason for
reduce_range (onnxruntime.ai/docs/performance/model-optimizations/quantization.html: U8S8 on AVX2/AVX512 without
VNNI); this CPU reports avx512_vnni, and which kernel ORT took was not checked. Which form is fastest on a CPU is
measured (``select.py``), not assumed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from resvit_export.errors import GraphRewriteError, UsageError

__all__ = ["INT8_FORMS", "Int8Graph", "quantize_cpu"]

INT8_FORMS = ("dynamic", "static-qdq", "static-qoperator")
# Linear layers, attention matmuls, the classifier. Not the patch Conv (see the module docstring: ConvInteger is slow).
DEFAULT_OP_TYPES = ("MatMul", "Gemm")


@dataclass(frozen=True)
class Int8Graph:
    form: str
    path: Path
    seconds: float
    calibration: dict | None  # None for dynamic

    @property
    def name(self) -> str:
        return f"int8-{self.form}"

    @property
    def note(self) -> str:
        return "ORT quantize_dynamic" if self.calibration is None else \
            f"ORT quantize_static ({self.form}), {self.calibration['images']} calibration images"


@contextlib.contextmanager
def _quiet():
    """ORT's quantizer prints progress and warns about pre-processing on every call."""
    root = logging.getLogger()
    was, root.disabled = root.disabled, True
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.disabled = was


def _reader(batches: Sequence[np.ndarray], input_name: str):
    from onnxruntime.quantization import CalibrationDataReader

    class Batches(CalibrationDataReader):
        def __init__(self):
            self._items = [{input_name: np.ascontiguousarray(b, dtype=np.float32)} for b in batches]

        def get_next(self):
            return self._items.pop(0) if self._items else None

    return Batches()


def quantize_cpu(src: str | os.PathLike, dst: str | os.PathLike, form: str,
                 calibration: Sequence[np.ndarray] | None = None, *, op_types: Sequence[str] = DEFAULT_OP_TYPES,
                 input_name: str = "pixels") -> Int8Graph:
    """Write the ``form`` INT8 copy of the fp32 graph ``src`` to ``dst``.

    ``calibration``: batches [b, 3, H, W] (any sizes; ORT's MinMax calibrator merges ranges over all of them) for
    the static forms. Raises UsageError for an unknown form or a static form without data, GraphRewriteError when
    ORT's quantiser fails or inserts nothing.
    """
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if form not in INT8_FORMS:
        raise UsageError(f"unknown CPU INT8 form {form!r}; use one of {', '.join(INT8_FORMS)}")
    if form != "dynamic" and not calibration:
        raise UsageError(f"INT8 form {form} needs calibration images (the dynamic form does not)")
    src, dst = Path(src), Path(dst)
    started = time.monotonic()
    try:
        with _quiet(), tempfile.TemporaryDirectory(prefix="resvit-quant-") as tmp:
            prepared = Path(tmp) / src.name
            # symbolic shape inference: not needed to quantize MatMuls with constant weights
            quant_pre_process(src, prepared, skip_symbolic_shape=True)
            if form == "dynamic":
                quantize_dynamic(prepared, dst, op_types_to_quantize=list(op_types), per_channel=True,
                                 reduce_range=True, weight_type=QuantType.QInt8,
                                 extra_options={"EnableSubgraph": True})
            else:
                quantize_static(prepared, dst, _reader(calibration, input_name),
                                quant_format=QuantFormat.QDQ if form == "static-qdq" else QuantFormat.QOperator,
                                op_types_to_quantize=list(op_types), per_channel=True, reduce_range=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.MinMax)
    except Exception as err:  # noqa: BLE001 - ORT raises plain exceptions
        raise GraphRewriteError(f"ONNX Runtime could not quantize {src.name} ({form}): {err}") from err
    import onnx

    ops = {n.op_type for n in onnx.load(str(dst), load_external_data=False).graph.node}
    if not ops & {"DynamicQuantizeLinear", "QuantizeLinear", "QLinearMatMul", "MatMulInteger",
                  "DynamicQuantizeMatMul"}:
        raise GraphRewriteError(f"quantizing {src.name} ({form}) changed nothing (op types {list(op_types)})")
    calib = None if form == "dynamic" else {
        "images": int(sum(b.shape[0] for b in calibration)),
        "sizes": sorted({f"{b.shape[2]}x{b.shape[3]}" for b in calibration}), "method": "minmax"}
    return Int8Graph(form, dst, time.monotonic() - started, calib)
