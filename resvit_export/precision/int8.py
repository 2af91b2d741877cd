"""INT8 as explicit Q/DQ in the ONNX (TensorRT 11 has no implicit INT8 / calibrator; TRT 10 prefers Q/DQ too).

``make_int8_onnx`` = multi-resolution calibration (:mod:`.calibration`, cached) + ONNX Runtime's
``quantize_static`` in QDQ format with what TensorRT wants:

* symmetric int8 activations and weights (``ActivationSymmetric``/``WeightSymmetric``: zero point 0);
* per-channel weights;
* Q/DQ only around ``MatMul``/``Gemm``/``Conv`` (what TensorRT fuses into INT8 kernels); LayerNormalization,
  Softmax, GELU and residual Adds stay float;
* biases stay float (``QuantizeBias=False``): TensorRT has no INT32 DequantizeLinear for biases.

Dynamic batch/H/W survive (checked: the graph input keeps its symbolic dims, and the result is run in ONNX
Runtime in a child process at several resolutions against the FP32 source).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from resvit_export.errors import GraphRewriteError, UsageError
from resvit_export.io import sha256_file

from .calibration import NO_DATA_HINT, CalibrationSet, compute_ranges
from .fp16 import (DEFAULT_VERIFY_SIZES, PrecisionResult, _load, check_drift, save_model_atomic, toposort,
                   verify_against_reference)
from .policy import INT8_OP_TYPES, resolve_keep_fp32

__all__ = ["make_int8_onnx", "INT8_COSINE_MIN", "qdq_summary", "node_roles", "ROLES", "INT8_POLICIES",
           "DEFAULT_INT8_POLICY", "heldout_gate", "HELDOUT_TOP1_MIN", "HELDOUT_N", "HELDOUT_MAX_SIDE"]

log = logging.getLogger(__name__)

# PTQ on ViTs loses accuracy (NVIDIA/FasterTransformer#267: -2.15 % top-1 on ViT-B/16@384). The gate is a
# sanity floor that catches broken scales (which give cosine ~0), not an accuracy claim; measured on the random
# tiny test models: see tests/precision and the README.
INT8_COSINE_MIN = 0.98


# What a quantizable node does in a ViT graph (see node_roles).
ROLES = ("linear", "conv", "attn_scores", "attn_values")
# Which roles get Q/DQ. "weighted" (default): MatMul/Gemm/Conv with a weight; the two attention MatMuls stay
# float. "all" quantizes every MatMul/Gemm/Conv (the first policy; kept for measurements). Measured on the
# trained tiny models (training/int8_sensitivity.py, README "INT8"): quantizing softmax·V alone takes
# resformer_test from 99 % agreement to 13 % at 512x256 (probabilities ~1/N share one per-tensor scale), while
# "weighted" keeps 73-97 % at 224 px and above, where "all" falls to 7-73 % at 512x256 for every family whose
# attention grows with the image.
INT8_POLICIES: dict[str, tuple[str, ...]] = {
    "weighted": ("linear", "conv"),
    "all": ROLES,
}
DEFAULT_INT8_POLICY = "weighted"


def node_roles(model) -> dict[str, list[str]]:
    """Names of the MatMul/Gemm/Conv nodes of ``model`` (a path or onnx.ModelProto) by role, in graph order.

    ``linear``/``conv``: one input is a weight (an initializer, or a Constant/DequantizeLinear of one).
    ``attn_values``: both inputs are activations and one comes from a Softmax (possibly through a Cast).
    ``attn_scores``: both inputs are activations otherwise (Q·Kᵀ).
    """
    if not hasattr(model, "graph"):
        model = _load(model)
    g = model.graph
    consts = {t.name for t in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    produced_by = {o: n for n in g.node for o in n.output}

    def origin(name: str):
        node = produced_by.get(name)
        while node is not None and node.op_type in ("Cast", "DequantizeLinear", "Identity"):
            if node.input[0] in consts:
                return "const"
            node = produced_by.get(node.input[0])
        return "const" if name in consts else node.op_type if node is not None else "input"

    out: dict[str, list[str]] = {role: [] for role in ROLES}
    for n in g.node:
        if n.op_type not in INT8_OP_TYPES:
            continue
        sources = [origin(i) for i in n.input[:2]]
        if n.op_type == "Conv":
            out["conv"].append(n.name)
        elif "const" in sources:
            out["linear"].append(n.name)
        elif "Softmax" in sources:
            out["attn_values"].append(n.name)
        else:
            out["attn_scores"].append(n.name)
    return out


# The held-out gate of an INT8 build of a trained reference checkpoint (weights/*.safetensors, matched by sha256):
# top-1 agreement of the Q/DQ graph (ONNX Runtime) with eager fp32 on held-out scenes of the task the weights were
# trained on (reference.task: a seed range training never draws from), at the profiles' min/opt/max. Random
# weights never decide it: without a reference checkpoint there is no gate (the parity matrix still runs).
HELDOUT_N = 200  # scenes per size
HELDOUT_TOP1_MIN = 0.8  # per size; see README "INT8" for the measured agreement per policy, family and size
HELDOUT_MAX_SIDE = 512  # the reference protocol's largest side; larger profile corners are scaled down


def heldout_gate(model, onnx_path: str | os.PathLike, model_name: str, weights, profiles, *,
                 n: int = HELDOUT_N, minimum: float = HELDOUT_TOP1_MIN):
    """(run, Agreement) for a build of a trained reference checkpoint, else None (see HELDOUT_TOP1_MIN)."""
    from resvit_export.cpu.accuracy import heldout_int8_agreement
    from resvit_export.reference.checkpoints import run_of_weights

    from .calibration import calibration_resolutions

    run = run_of_weights(model_name, weights)
    if run is None:
        return None
    sizes = calibration_resolutions(profiles, model.size_rule, max_side=HELDOUT_MAX_SIDE)
    return run, heldout_int8_agreement(model, onnx_path, sizes, n, minimum=minimum)


def qdq_summary(model) -> dict:
    """Counts of Q/DQ nodes and which op types consume a DequantizeLinear output."""
    g = model.graph
    produced_by = {o: n for n in g.node for o in n.output}
    counts = Counter(n.op_type for n in g.node)
    fed = Counter()
    for n in g.node:
        if any(produced_by.get(i) is not None and produced_by[i].op_type == "DequantizeLinear" for i in n.input):
            fed[n.op_type] += 1
    return {"QuantizeLinear": counts.get("QuantizeLinear", 0), "DequantizeLinear": counts.get("DequantizeLinear", 0),
            "dq_consumers": dict(fed)}


def _as_calibration_set(calibration) -> CalibrationSet:
    if calibration is None:
        raise UsageError(NO_DATA_HINT)
    if isinstance(calibration, CalibrationSet):
        return calibration
    if isinstance(calibration, (str, os.PathLike)):
        return CalibrationSet.load(calibration)
    raise UsageError(f"calibration must be a CalibrationSet or a saved set's directory, got {type(calibration).__name__}")


def make_int8_onnx(src: str | os.PathLike, dst: str | os.PathLike, calibration: CalibrationSet | str | None,
                   method: str = "entropy", keep_fp32: str | Iterable[str] | None = None, *,
                   cache_dir: str | os.PathLike | None = "calibration/cache", batch_size: int = 4,
                   verify: bool = True, verify_sizes: Sequence[tuple[int, int]] = DEFAULT_VERIFY_SIZES,
                   cosine_min: float = INT8_COSINE_MIN, policy: str = DEFAULT_INT8_POLICY) -> PrecisionResult:
    """Write a symmetric-int8 Q/DQ copy of ``src`` to ``dst``.

    Args:
        calibration: a CalibrationSet (several resolutions) or the directory of a saved one; None raises
            UsageError "INT8 needs calibration data: pass --calib-data DIR or --calib-synthetic N".
        method: 'entropy' | 'minmax' | 'percentile' (ONNX Runtime calibrators).
        keep_fp32: node names (excluded from quantization) and/or op types (not quantized at all).
        cache_dir: where activation ranges are cached by (ONNX, set, method); None disables the cache.
        verify: run source and result in ONNX Runtime child processes at ``verify_sizes``; require cosine >=
            ``cosine_min`` (a sanity floor, see INT8_COSINE_MIN). The file is only written if this passes.
        policy: which node roles get Q/DQ (INT8_POLICIES; default "weighted": attention MatMuls stay float).

    Raises:
        UsageError: no calibration data, unknown method, or a bad keep_fp32 entry.
        InvalidArtifactError: ONNX Runtime crashes/fails on the Q/DQ graph (run in a child process).
        ParityError: cosine below ``cosine_min`` at a size.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorsData, save_tensors_data

    from .calibration import _ort_method

    calib = _as_calibration_set(calibration)
    ort_method = _ort_method(method)
    model = _load(src)
    if policy not in INT8_POLICIES:
        raise UsageError(f"unknown INT8 policy {policy!r}; choose one of {', '.join(INT8_POLICIES)}")
    keep = resolve_keep_fp32(model, keep_fp32, "int8", default_ops=())
    op_types = [t for t in INT8_OP_TYPES if t not in keep.extra_ops]
    float_roles = [r for r in ROLES if r not in INT8_POLICIES[policy]]
    by_role = node_roles(model)
    exclude = list(dict.fromkeys(list(keep.keep_nodes) + [n for r in float_roles for n in by_role[r]]))
    ranges = compute_ranges(src, calib, method, cache_dir=cache_dir, batch_size=batch_size)
    dst = Path(dst)
    import onnx

    with tempfile.TemporaryDirectory(prefix="resvit-int8-") as tmp:
        tmp = Path(tmp)
        cache = tmp / "ranges.json"
        save_tensors_data(TensorsData.from_dict(ranges.ort_payload), cache)
        raw = tmp / "raw.onnx"
        logging.getLogger().disabled, was = True, logging.getLogger().disabled  # ORT warns about pre-processing
        try:
            quantize_static(str(src), str(raw), calibration_data_reader=None, quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=op_types, per_channel=True, reduce_range=False,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=exclude, calibrate_method=ort_method,
                            calibration_cache_path=str(cache),
                            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                           "QuantizeBias": False,
                                           "OpTypesToExcludeOutputQuantization": list(op_types)})
        except Exception as err:  # noqa: BLE001 - ORT raises plain exceptions
            raise GraphRewriteError(f"ONNX Runtime quantize_static failed on {src}: {err}") from err
        finally:
            logging.getLogger().disabled = was
        q = onnx.load(str(raw))
        toposort(q)
        try:
            onnx.checker.check_model(q)
        except Exception as err:  # noqa: BLE001
            raise GraphRewriteError(f"the Q/DQ graph fails the ONNX checker: {err}") from err
        summary = qdq_summary(q)
        if summary["QuantizeLinear"] == 0:
            raise GraphRewriteError(f"quantization inserted no Q/DQ nodes into {src} (op types {op_types})")
        staged = save_model_atomic(q, tmp / dst.name)
        parity: list[dict] = []
        if verify:
            parity = verify_against_reference(src, staged, verify_sizes)
            check_drift(parity, cosine_min, "INT8", "try --calib-method percentile, more/real calibration "
                        "images, or --keep-fp32 NODE for sensitive layers")
        final = save_model_atomic(q, dst)
    counts = Counter(n.op_type for n in q.graph.node)
    node_counts = {"before": len(model.graph.node), "after": len(q.graph.node),
                   "quantize_linear": summary["QuantizeLinear"], "dequantize_linear": summary["DequantizeLinear"],
                   "quantized_ops": sum(summary["dq_consumers"].get(t, 0) for t in op_types),
                   "kept_fp32": len(exclude), "casts": counts.get("Cast", 0)}
    result = PrecisionResult(
        str(final), "int8", exclude, sorted(set(t for t in INT8_OP_TYPES if t not in op_types)), node_counts,
        sha256_file(final), ranges.key["onnx_sha256"], parity,
        {"method": ranges.method, "calibration": calib.sidecar(), "cache_path": str(ranges.cache_path or ""),
         "cache_hit": ranges.cache_hit, "op_types_quantized": op_types, "dq_consumers": summary["dq_consumers"],
         "scheme": "QDQ, symmetric int8, per-channel weights, float bias",
         "policy": policy, "float_roles": {r: by_role[r] for r in float_roles}})
    log.info("INT8 ONNX %s: %d Q / %d DQ nodes (ranges: %s%s)", final, summary["QuantizeLinear"],
             summary["DequantizeLinear"], ranges.method, ", cache hit" if ranges.cache_hit else "")
    return result
