"""Which ONNX operators each TensorRT ONNX parser version imports, and the highest opset it reads.

Every list is transcribed from the parser's own support matrix (onnx/onnx-tensorrt ``docs/operators.md``) for the
release named in ``source``; where no matrix exists for the exact version, the nearest documented one is used and
the ops added in between (per the parser changelogs) are removed. Ops a newer matrix lists but whose arrival in the
target version is not documented land in ``unverified`` and lint as warnings, not errors.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TrtTarget", "TARGETS", "TARGET_NAMES", "DEFAULT_TARGET", "get_target"]

OPS_MD_8_5 = "https://github.com/onnx/onnx-tensorrt/blob/release/8.5-GA/docs/operators.md"
OPS_MD_10_0 = "https://github.com/onnx/onnx-tensorrt/blob/release/10.0-GA/docs/operators.md"
OPS_MD_10_15 = "https://github.com/onnx/onnx-tensorrt/blob/release/10.15-GA/docs/operators.md"
TRT_CHANGELOG = "https://github.com/NVIDIA/TensorRT/blob/main/CHANGELOG.md"
ONNX_TRT_CHANGELOG = "https://github.com/onnx/onnx-tensorrt/blob/main/docs/Changelog.md"
OPSET_GUIDE_11 = "https://docs.nvidia.com/deeplearning/tensorrt/latest/reference/onnx-opset-guide.html"

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

# "Y" rows of the TensorRT 10.15 matrix (header: "inclusive range of opset 9 to opset 24").
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

# Dated arrivals (changelogs): Attention in 10.14 (TensorRT CHANGELOG "10.14 GA ... Parsers: Added support for the
# `Attention` operator"); RotaryEmbedding, RMSNormalization, TensorScatter in 10.15 (onnx-tensorrt Changelog 10.15).
_ADDED_10_14 = frozenset({"Attention"})
_ADDED_10_15 = frozenset({"RotaryEmbedding", "RMSNormalization", "TensorScatter"})
# In the 10.15 matrix but absent from 8.5 with no dated 10.x changelog entry found: lint warns, not errors.
# Known older arrivals are excluded: LayerNormalization (8.6), Hardmax (9.2, TensorRT OSS v9.2.0 release notes),
# Gelu/CastLike (opset 20/15 ops in the 10.0 matrix).
_UNDATED_10X = _OPS_10_15 - _OPS_8_5 - _ADDED_10_14 - _ADDED_10_15 - {"LayerNormalization", "Hardmax", "Gelu",
                                                                        "CastLike"}


@dataclass(frozen=True)
class TrtTarget:
    """One deployment target: the TensorRT version its ONNX parser comes from and what that parser reads."""

    name: str
    label: str
    trt_version: tuple[int, int]
    max_opset: int
    ops: frozenset[str]
    unverified: frozenset[str]
    source: str

    @property
    def version_str(self) -> str:
        return f"{self.trt_version[0]}.{self.trt_version[1]}"


def _v10(version: tuple[int, int], max_opset: int, name: str, label: str, opset_source: str) -> TrtTarget:
    ops = _OPS_10_15
    if version < (10, 15):
        ops = ops - _ADDED_10_15
    if version < (10, 14):
        ops = ops - _ADDED_10_14
    unverified = _UNDATED_10X if version < (10, 15) else frozenset()
    return TrtTarget(name, label, version, max_opset, frozenset(ops - unverified), frozenset(unverified),
                     f"ops: {OPS_MD_10_15} minus later additions ({TRT_CHANGELOG}, {ONNX_TRT_CHANGELOG}); "
                     f"opset: {opset_source}")


TARGETS: dict[str, TrtTarget] = {
    "jetpack5": TrtTarget("jetpack5", "JetPack 5.1 (TensorRT 8.5)", (8, 5), 17, _OPS_8_5, frozenset(),
                          f"ops + opset: {OPS_MD_8_5} ('TensorRT 8.5 supports operators up to Opset 17')"),
    # 10.0's matrix reads "opset 9 to opset 20"; the ONNX submodule moved to 1.17 (opset 22) only in 10.6
    # (onnx-tensorrt Changelog 10.6), so 10.3 parses up to 20.
    "jetpack6": _v10((10, 3), 20, "jetpack6", "JetPack 6.1/6.2 (TensorRT 10.3)",
                     f"{OPS_MD_10_0} ('opset 9 to opset 20'); ONNX 1.17 submodule only from 10.6"),
    # 10.6-10.13 carry ONNX 1.17 (opset 22); opset 23 (which introduced Attention) arrives with 10.14.
    "jetpack7": _v10((10, 13), 22, "jetpack7", "JetPack 7.0/7.1 (TensorRT 10.13)",
                     f"{ONNX_TRT_CHANGELOG} (10.6: ONNX 1.17 = opset 22); Attention/opset 23 from 10.14"),
    "trt10": _v10((10, 16), 24, "trt10", "TensorRT 10.x latest (10.16)",
                  f"{OPS_MD_10_15} ('opset 9 to opset 24')"),
    "trt11": TrtTarget("trt11", "TensorRT 11.x", (11, 4), 25, _OPS_10_15, frozenset(),
                       f"ops: {OPS_MD_10_15} (11.x docs point to the same matrix); opset: {OPSET_GUIDE_11} "
                       "('Maximum opset 25')"),
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
