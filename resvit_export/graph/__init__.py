"""Graph stage: onnx-graphsurgeon rewrites proven with ONNX Runtime, and a lint against TensorRT ONNX parsers.

Only numpy is imported here; onnx, onnxruntime and onnx_graphsurgeon load inside the functions that need them.
"""

from .lint import Finding, LintReport, lint_onnx
from .passes import PASS_NAMES, PASSES, PassResult
from .rewrite import PassReport, RewriteContext, RewriteReport, apply_rewrites, default_check_shapes
from .rules import RULES, Rule
from .trt_ops import DEFAULT_TARGET, TARGET_NAMES, TARGETS, TrtTarget, get_target

__all__ = [
    "apply_rewrites", "RewriteContext", "RewriteReport", "PassReport", "PassResult", "PASSES", "PASS_NAMES",
    "default_check_shapes", "lint_onnx", "LintReport", "Finding", "RULES", "Rule", "TARGETS", "TARGET_NAMES",
    "DEFAULT_TARGET", "TrtTarget", "get_target",
]
