"""Which ONNX operators each TensorRT ONNX parser version imports, and the highest opset it documents.

Every list is transcribed from the parser's own support matrix (onnx/onnx-tensorrt ``docs/operators.md``) for the
release named in ``source``; where no matrix for the exact version was reachable (10.3, 10.13, 10.16, 11.4), the
nearest newer matrix is used minus the operators the TensorRT / onnx-tensorrt changelogs date after the target.
tests/conformance/test_parser_ops.py checks every target against an independent transcription of the matrices
(8.5-GA, 10.1-GA, 10.15 and 11.1) and the dated changelog entries.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TrtTarget", "TARGETS", "TARGET_NAMES", "DEFAULT_TARGET", "get_target"]

OPS_MD_8_5 = "https://github.com/onnx/onnx-tensorrt/blob/release/8.5-GA/docs/operators.md"
OPS_MD_10_1 = "https://github.com/onnx/onnx-tensorrt/blob/release/10.1-GA/docs/operators.md"
OPS_MD_10_15 = "https://github.com/onnx/onnx-tensorrt/blob/fa5aa9f61e7781d2ca8f5351d42c1f19525a6124/docs/operators.md"
# the parsers/onnx submodule commit of NVIDIA/TensorRT release/11.1
OPS_MD_11_1 = "https://github.com/onnx/onnx-tensorrt/blob/7c51a63a719180eb5160c874c111746f3fb46a6b/docs/operators.md"
TRT_CHANGELOG = "https://github.com/NVIDIA/TensorRT/blob/main/CHANGELOG.md"
ONNX_TRT_CHANGELOG = "https://github.com/onnx/onnx-tensorrt/blob/main/docs/Changelog.md"

# "Y" rows of the TensorRT 8.5 matrix (header: "TensorRT 8.5 supports operators up to Opset 17").
# Note LayerNormalization is "N" there: INormalizationLayer arrived in 8.6.
_OPS_8_5 = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu Clip
Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div Dropout Einsum
Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool
GlobalMaxPool Greater GreaterOrEqual GridSample GRU HardSwish HardSigmoid Identity If ImageScaler
InstanceNormalization IsNaN LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul
Max MaxPool Mean MeanVarianceNormalization Min Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad
ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range
Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum
ReduceSumSquare Relu Reshape Resize ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements
ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt
Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

# "Y" rows of the TensorRT 10.15 matrix (header: "inclusive range of opset 9 to opset 24"); the 11.1 matrix has the
# same rows plus Swish.
_OPS_10_15 = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool BatchNormalization BlackmanWindow
Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv
DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather
GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample
GroupNormalization GRU HammingWindow HannWindow HardSigmoid HardSwish Hardmax Identity If ImageScaler
InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM
LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression
NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin
ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RMSNormalization RNN RoiAlign
RotaryEmbedding Round STFT ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh
Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh TensorScatter
ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

# Operators the 10.15 matrix lists, dated by the changelogs (NVIDIA/TensorRT CHANGELOG.md "Parser changes" per
# release; onnx-tensorrt docs/Changelog.md). Everything else in the 10.15 matrix is already a "Y" row of the 10.1-GA
# matrix, which brackets 10.3 (no operator arrives in 10.2 or 10.3).
_ARRIVALS: dict[str, tuple[int, int]] = {
    "BlackmanWindow": (10, 4), "HammingWindow": (10, 4), "HannWindow": (10, 4),  # 10.4.0 GA parser changes
    "STFT": (10, 5),                                                               # 10.5.0 GA: real-valued STFT
    "Attention": (10, 14),                                                         # 10.14 GA parsers
    "RotaryEmbedding": (10, 15), "RMSNormalization": (10, 15), "TensorScatter": (10, 15),  # 10.15 GA
    "Swish": (11, 0),                                                              # 11.0 GA parsers; 11.1 matrix row
}


def _ops_at(version: tuple[int, int]) -> frozenset[str]:
    """The 10.15 matrix plus Swish, minus every operator that arrived after ``version``."""
    return frozenset(op for op in _OPS_10_15 | {"Swish"} if _ARRIVALS.get(op, (0, 0)) <= version)


@dataclass(frozen=True)
class TrtTarget:
    """One deployment target: the TensorRT version its ONNX parser comes from and what that parser reads."""

    name: str
    label: str
    trt_version: tuple[int, int]
    max_opset: int  # the highest opset the release documents; newer opsets are a warning (the parser reads them)
    ops: frozenset[str]
    source: str

    @property
    def version_str(self) -> str:
        return f"{self.trt_version[0]}.{self.trt_version[1]}"


def _derived(version: tuple[int, int], max_opset: int, name: str, label: str, opset_source: str) -> TrtTarget:
    return TrtTarget(name, label, version, max_opset, _ops_at(version),
                     f"ops: {OPS_MD_10_15} (+ Swish, {OPS_MD_11_1}) minus later arrivals ({TRT_CHANGELOG}); "
                     f"opset: {opset_source}")


TARGETS: dict[str, TrtTarget] = {
    "jetpack5": TrtTarget("jetpack5", "JetPack 5.1 (TensorRT 8.5)", (8, 5), 17, _OPS_8_5,
                          f"ops + opset: {OPS_MD_8_5} ('TensorRT 8.5 supports operators up to Opset 17')"),
    # 10.0-GA and 10.1-GA matrices read "opset 9 to opset 20"; the changelog has no ONNX bump before 10.6 (1.17).
    "jetpack6": _derived((10, 3), 20, "jetpack6", "JetPack 6.1/6.2 (TensorRT 10.3)",
                         f"{OPS_MD_10_1} ('opset 9 to opset 20'); ONNX 1.17 submodule only from 10.6"),
    # 10.11 moved the parser to ONNX 1.18 (opset 23; onnx-tensorrt Changelog "10.11 GA ... Updated ONNX version to
    # 1.18"), but the 10.13 matrix was not reachable and opset 23 is also where torch emits the ONNX Attention op,
    # which 10.13 cannot parse (10.14): 22 is the highest opset we recommend, not a documented parser limit.
    "jetpack7": _derived((10, 13), 22, "jetpack7", "JetPack 7.0/7.1 (TensorRT 10.13)",
                         f"{ONNX_TRT_CHANGELOG} (10.11: ONNX 1.18); Attention (opset 23) parsed only from 10.14"),
    "trt10": _derived((10, 16), 24, "trt10", "TensorRT 10.x latest (10.16)",
                      f"{OPS_MD_10_15} ('opset 9 to opset 24')"),
    # 11.0-11.4 document opset 24; opset 25 (ONNX 1.22) arrives with 11.5 (onnx-tensorrt release/11.5-GA notes).
    "trt11": _derived((11, 4), 24, "trt11", "TensorRT 11.0-11.4",
                      f"{OPS_MD_11_1} ('inclusive range of opset 9 to opset 24'); opset 25 only from 11.5"),
}
TARGET_NAMES = tuple(TARGETS)
DEFAULT_TARGET = "jetpack6"  # JetPack 6 (TensorRT 10.3) is what most Orin boards run; build and lint share it


def get_target(name: str) -> TrtTarget:
    """Look up a target by name; raises UsageError listing the valid names."""
    from resvit_export.errors import UsageError

    try:
        return TARGETS[str(name).lower()]
    except KeyError:
        raise UsageError(f"unknown lint target {name!r}; choose from {', '.join(TARGET_NAMES)}") from None
