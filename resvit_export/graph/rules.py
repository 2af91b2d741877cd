"""The lint rule table: one place, data only. ``lint.py`` holds the checks; each check is keyed by a rule id here.

A rule applies to a target when ``min_trt <= target.trt_version < max_trt`` (None = unbounded).
"""

from __future__ import annotations

from dataclasses import dataclass

from .trt_ops import ONNX_TRT_CHANGELOG, OPS_MD_8_5, OPS_MD_10_1, OPS_MD_10_15, OPS_MD_11_1, TRT_CHANGELOG

__all__ = ["Rule", "RULES", "get_rule", "accepts_runtime_if", "RUNTIME_IF_RULES", "ERROR", "WARNING"]

ERROR = "error"
WARNING = "warning"

_RESIZE_CHECKER = "https://github.com/onnx/onnx-tensorrt/blob/release/10.1-GA/onnxOpCheckers.cpp (Resize)"
# The If importer parses only the taken branch when the condition is a one-element weight (initializer or Constant):
# onnx-tensorrt 8.5-GA builtin_op_importers.cpp:2125-2126, 10.1-GA onnxOpImporters.cpp:2595-2596.
_IF_FOLD = "onnx-tensorrt If importer: 'For constant conditions, parse only the selected subgraph'"
_RESIZE_8_5 = ("https://github.com/onnx/onnx-tensorrt/blob/release/8.5-GA/builtin_op_importers.cpp (Resize: mode "
               "cubic -> ResizeMode::kCUBIC; 'only supports cubic resizing on the outermost 2 dimensions')")
# The 10.11 change is in the C++ header and the 10.11.0 release notes ("Condition-Dependent Shapes: the inputs to
# IIfConditionalOutputLayer may now have different shapes. They must still have the same rank"; research file
# tensorrt-verified.md L3). The Python bindings' IIfConditional docstring did not follow: the real 10.13.3.9 and
# 11.4.0.106 wheels still say shapes must match unless the condition is a build-time constant
# (tests/conformance/test_if_conditional_doc.py pins both). The header is the contract; the docstring lag is why
# a real gated ViTAR engine build on >= 10.11 is listed as unexecuted in the README.
_NVINFER_IF = ("NVIDIA/TensorRT include/NvInfer.h IIfConditional (10.10: same type and shape; 10.11+: same rank); "
               "TensorRT 10.11.0 release notes (Condition-Dependent Shapes)")
_LN_WARN = "https://github.com/pytorch/TensorRT/issues/2730 (TensorRT's 'Running layernorm after self-attention in FP16' warning)"


@dataclass(frozen=True)
class Rule:
    """One lint rule as data: id, severity, message, fix, source, and the TensorRT versions it applies to."""

    id: str
    severity: str
    title: str
    message: str
    fix: str
    source: str
    min_trt: tuple[int, int] | None = None
    max_trt: tuple[int, int] | None = None  # exclusive

    def applies(self, trt_version: tuple[int, int]) -> bool:
        return (self.min_trt is None or trt_version >= self.min_trt) and (
            self.max_trt is None or trt_version < self.max_trt)

    def to_dict(self) -> dict:
        return {"id": self.id, "severity": self.severity, "title": self.title, "message": self.message,
                "fix": self.fix, "source": self.source, "min_trt": self.min_trt, "max_trt": self.max_trt}


RULES: tuple[Rule, ...] = (
    Rule("TRT001", ERROR, "resize-antialias",
         "Resize with antialias=1: the TensorRT ONNX parser rejects it ('Antialiasing is not supported')",
         "run `apply_rewrites` (pass resize_antialias drops the flag where the Resize only upsamples), or export "
         "with antialias=False, or raise the profile minimum to the model's native resolution",
         f"{OPS_MD_10_15} (Resize: 'Antialiasing is not supported'); {_RESIZE_CHECKER}; NVIDIA/TensorRT#3560"),
    Rule("TRT002", ERROR, "attention-op",
         "ONNX Attention (opset 23) is parsed only from TensorRT 10.14",
         "export with opset <= 22 (torch.onnx.export(..., opset_version=18..20)) so SDPA becomes MatMul/Softmax/MatMul",
         f"{TRT_CHANGELOG} (10.14 GA: 'Parsers: Added support for the Attention operator')", max_trt=(10, 14)),
    Rule("TRT003", ERROR, "if-branch-shape",
         "If branches produce outputs of different shapes; TensorRT before 10.11 requires equal shapes (an If whose "
         "condition is a constant is folded by the parser and not checked)",
         "make both branches produce the same shape (pad/mask), or export one graph per shape range, or target "
         "TensorRT >= 10.11", f"{_NVINFER_IF}; {_IF_FOLD}", max_trt=(10, 11)),
    Rule("TRT004", ERROR, "if-branch-rank",
         "If branches produce outputs of different ranks (an If whose condition is a constant is folded by the "
         "parser and not checked)",
         "make both branches return tensors of the same rank",
         f"{OPS_MD_10_15} (If: 'must have the same rank'); {_NVINFER_IF}; {_IF_FOLD}"),
    Rule("TRT005", ERROR, "loop-carried-shape",
         "Loop-carried value changes shape across iterations; TensorRT loops need fixed carried shapes",
         "unroll the loop at export (one graph per profile range) or keep a fixed shape and mask",
         f"{OPS_MD_10_15} (Loop: 'The shape of Loop carried dependencies must be the same across all loop "
         "iterations'); NvInfer.h IRecurrenceLayer"),
    # The parser never refuses a newer opset (ModelImporter::importModel only warns below opset 7 and records the
    # version, onnx-tensorrt 10.1-GA): it imports each node by op type, so an op whose semantics changed after the
    # documented maximum may import wrongly or fail. A warning, not an error.
    Rule("TRT006", WARNING, "opset-above-documented",
         "model opset is above the highest opset this TensorRT release documents; the parser still reads the model, "
         "but ops whose newer versions changed are unverified",
         "re-export with a lower opset_version (or onnx.version_converter.convert_version) to stay in the "
         "documented range", "see resvit_export/graph/trt_ops.py TARGETS[*].source for each target's opset source"),
    Rule("TRT007", WARNING, "float64",
         "float64 tensor: the parser accepts it but casts DOUBLE down to FLOAT, clamping values to +-FLT_MAX",
         "cast to float32 in the model (or convert the initializer) before export, so the engine computes what "
         "ONNX Runtime checked",
         f"{OPS_MD_10_15} and {OPS_MD_11_1} ('limited support for DOUBLE type ... cast DOUBLE down to FLOAT'); "
         f"{OPS_MD_8_5}"),
    Rule("TRT008", ERROR, "unsupported-op",
         "operator is not in this TensorRT parser's support matrix",
         "re-export so the op is decomposed (other opset / torch code), replace it with onnx-graphsurgeon, or "
         "provide a TensorRT plugin", "see resvit_export/graph/trt_ops.py TARGETS[*].source"),
    Rule("TRT010", WARNING, "custom-domain-op",
         "operator is in a non-standard domain; the parser only imports it through a registered plugin",
         "make sure a TensorRT plugin with this op name is registered on the target",
         f"{OPS_MD_10_15}; onnx-tensorrt 10.1-GA ModelImporter.cpp ('No checker registered for op ... Attempting to "
         "check as plugin')"),
    Rule("TRT011", WARNING, "decomposed-layernorm",
         "decomposed LayerNorm (ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div): may overflow in FP16",
         "run `apply_rewrites` (pass layernorm fuses it into LayerNormalization) or export with opset >= 17",
         _LN_WARN, min_trt=(8, 6)),
    Rule("TRT012", WARNING, "int64-downcast",
         "INT64 tensors: TensorRT 8.x casts INT64 down to INT32 (values beyond INT32 are clamped)",
         "usually harmless for shape math; keep index values inside int32",
         f"{OPS_MD_8_5} ('TensorRT will attempt to cast down INT64 to INT32')", max_trt=(10, 0)),
    Rule("TRT013", ERROR, "gridsample-rank",
         "GridSample with non-4D input: the parser supports 4-D input only",
         "reshape to 4-D NCHW around the GridSample",
         f"{OPS_MD_10_15} (GridSample: 'Input must be 4D input'); {ONNX_TRT_CHANGELOG} (8.5: GridSample added)"),
    Rule("TRT014", ERROR, "resize-mode",
         "Resize mode / coordinate mode / aspect policy this parser does not import",
         "use mode nearest/linear/cubic, coordinate_transformation_mode half_pixel/pytorch_half_pixel/"
         "asymmetric/align_corners/tf_half_pixel_for_nn, keep_aspect_ratio_policy stretch",
         f"{OPS_MD_10_15} (Resize restrictions); {_RESIZE_CHECKER} (cubic accepted by the 10.x importer)"),
    Rule("TRT015", ERROR, "resize-cubic-8.5-dims",
         "cubic Resize that changes more than 2 dimensions: the TensorRT 8.5 importer accepts cubic Resize only on "
         "2 resized dimensions",
         "resize only the two spatial dimensions (NCHW H, W), or use mode linear for this target",
         _RESIZE_8_5, max_trt=(8, 6)),
    Rule("TRT016", ERROR, "squeeze-axes-not-constant",
         "Squeeze/Unsqueeze whose axes input is computed at run time: TensorRT before 10.7 needs constant axes",
         "make the axes an initializer or a Constant (torch: squeeze/unsqueeze with literal dims), or target "
         "TensorRT >= 10.7",
         f"{OPS_MD_10_1} (Squeeze: '`axes` must be an initializer', Unsqueeze: '`axes` must be a constant "
         f"tensor'); {TRT_CHANGELOG} (10.7.0 GA: 'Added dynamic axes support for Squeeze and Unsqueeze')",
         min_trt=(10, 0), max_trt=(10, 7)),
    Rule("TRT017", ERROR, "reduce-axes-not-constant",
         "Reduce* whose axes input is computed at run time: the parser needs the axes as an initializer",
         "make the axes an initializer or a Constant (torch: reduce over literal dims)",
         f"{OPS_MD_10_1}, {OPS_MD_10_15} and {OPS_MD_11_1} (Reduce*: '`axes` must be an initializer'); 8.5 not "
         "verified", min_trt=(10, 0)),
    # TRT003 fires on shapes lint can see differ; this one on shapes nobody can compare before run time.
    Rule("TRT018", ERROR, "if-runtime-shape",
         "If with a run-time condition whose outputs have shapes computed at run time: TensorRT before 10.11 "
         "requires the two branches' shapes to be equal, and that this parser proves run-time shapes equal was "
         "never shown (resvit-export does not rely on it)",
         "keep the always-compute form for this target (ViTAR: atm_gate=False, what `build` picks when a target "
         "is older than TensorRT 10.11), or target TensorRT >= 10.11 (jetpack7, trt10, trt11)",
         f"{_NVINFER_IF} (10.10: 'The shapes of the two tensors must be equal unless the condition is a "
         f"build-time constant'); {_IF_FOLD}", max_trt=(10, 11)),
)

# An If whose branches have run-time shapes (ViTAR's gated ATM stages) is refused by these rules where they apply.
RUNTIME_IF_RULES = ("TRT003", "TRT018")


def accepts_runtime_if(trt_version: tuple[int, int]) -> bool:
    """True when a TensorRT version parses an If whose branches have run-time (possibly different) shapes."""
    return not any(get_rule(r).applies(trt_version) for r in RUNTIME_IF_RULES)

_BY_ID = {r.id: r for r in RULES}


def get_rule(rule_id: str) -> Rule:
    return _BY_ID[rule_id]
