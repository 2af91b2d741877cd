"""TensorRT / JetPack facts as data, and the capability check the builder and the CLI consult.

Nothing here imports TensorRT: every decision that depends on "which TensorRT will build this" is made from a
version string, so it is unit-tested on machines without TensorRT.

Sources (see shared/research/tensorrt.md §1.6, §2):
* JetPack matrix: Torch-TensorRT jetpack.rst, NVIDIA/TensorRT#3454, TRT 11.4.1 release notes
  (11.4.1 SBSA package supports JetPack >= 7.2.2 on AGX Orin and Thor; 11.0-11.4.0 do not support JetPack).
* Removed in TensorRT 11 (11.x migration guide, removed-API tables): BuilderFlag.FP16/BF16/INT8/FP8/INT4/FP4,
  OBEY/PREFER_PRECISION_CONSTRAINTS, every IInt8*Calibrator, IBuilderConfig.int8_calibrator,
  ICudaEngine.device_memory_size, layer.precision; trtexec --fp16/--int8/--bf16/--fp8/--int4/--best/--calib.
  NetworkDefinitionCreationFlag.STRONGLY_TYPED is "deprecated and ignored": every network is strongly typed.
* Deprecated in 10.x: implicit INT8 calibration (10.1), weak typing / precision flags (10.12).
* ONNX parser: the ONNX ``Attention`` op is parsed from 10.14; If-branches with different shapes from 10.11.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from resvit_export.errors import UsageError

__all__ = [
    "JetPackRelease",
    "JETPACK_RELEASES",
    "API_FEATURES",
    "Problem",
    "parse_version",
    "version_str",
    "jetpack_for_l4t",
    "jetpack_release",
    "has_api",
    "check_capabilities",
    "PRECISIONS",
    "MIN_SUPPORTED_TRT",
]

PRECISIONS = ("fp32", "fp16", "int8")
# The engine path of this toolchain uses the TensorRT 10 name-based API (set_input_shape, execute_async_v3,
# set_optimization_profile_async); JetPack 6.1's 10.3 is the oldest release we target.
MIN_SUPPORTED_TRT = (10, 3)


@dataclass(frozen=True)
class JetPackRelease:
    jetpack: str
    l4t: str  # L4T major.minor as written in /etc/nv_tegra_release ("R36 ... REVISION: 4.0" -> "36.4")
    tensorrt: str
    cuda: str
    python: str
    max_onnx_opset: int  # highest opset we recommend exporting for this TensorRT's parser
    devices: tuple[str, ...]
    note: str = ""


# Ordered oldest -> newest. max_onnx_opset: 17 for TRT 8.5; 20 for 10.x on Jetson (opset 23 emits ONNX
# Attention, parsed only from 10.14); 24 for 11.0-11.4 (the 11.1 operator matrix; opset 25 arrives with 11.5).
JETPACK_RELEASES: tuple[JetPackRelease, ...] = (
    JetPackRelease("5.1", "35", "8.5.2", "11.4", "3.8", 17, ("orin-nano", "orin-nx-16", "agx-orin-32", "agx-orin-64"),
                   "TensorRT 8.5 lacks the TRT 10 runtime API: build with trtexec only; not supported by the runner"),
    JetPackRelease("6.0", "36.3", "8.6.2", "12.2", "3.10", 17, ("orin-nano", "orin-nx-16", "agx-orin-32", "agx-orin-64"),
                   "TensorRT 8.6 (version uncertain): upgrade to JetPack 6.1+"),
    JetPackRelease("6.1", "36.4", "10.3.0", "12.6", "3.10", 20, ("orin-nano", "orin-nx-16", "agx-orin-32", "agx-orin-64")),
    JetPackRelease("6.2", "36.4", "10.3.0", "12.6", "3.10", 20, ("orin-nano", "orin-nx-16", "agx-orin-32", "agx-orin-64")),
    JetPackRelease("7.0", "38.2", "10.13.3", "13.0", "3.12", 20, ("thor",), "Thor only (sm_110, no DLA)"),
    JetPackRelease("7.1", "38.4", "10.13.3", "13.0", "3.12", 20, ("thor",), "Thor only (sm_110, no DLA)"),
    JetPackRelease("7.2", "39.2", "10.13.3", "13.0", "3.12", 20, ("agx-orin-32", "agx-orin-64", "thor"),
                   "JetPack 7.2 apt TensorRT is 10.x (third-party report); from 7.2.2 the TensorRT 11.4.1 SBSA "
                   "package is supported (AGX Orin and Thor)"),
    JetPackRelease("7.2.2", "39.2", "11.4.1", "13.0", "3.12", 24, ("agx-orin-32", "agx-orin-64", "thor"),
                   "TensorRT 11.4.1 Linux SBSA package (install it; JetPack apt may still carry 10.x)"),
)


# feature -> (first version that has it, first version that no longer has it, note). None = open end.
API_FEATURES: dict[str, tuple[tuple[int, ...] | None, tuple[int, ...] | None, str]] = {
    "BuilderFlag.FP16": (None, (11,), "weak typing; removed in 11 (precision comes from the ONNX)"),
    "BuilderFlag.INT8": (None, (11,), "weak typing; removed in 11 (use Q/DQ ONNX)"),
    "IInt8Calibrator": (None, (11,), "implicit INT8 calibration; deprecated 10.1, removed in 11"),
    "config.set_flag(FP16/INT8)": (None, (11,), "set_flag itself stays (TF32, REFIT ...); the precision flags go"),
    "NetworkDefinitionCreationFlag.STRONGLY_TYPED": ((9, 1), None, "opt-in on 10.x; deprecated and ignored in 11"),
    "strongly_typed_default": ((11,), None, "every network is strongly typed in 11"),
    "trtexec --fp16": (None, (11,), "removed in trtexec 11"),
    "trtexec --int8": (None, (11,), "removed in trtexec 11"),
    "trtexec --calib": (None, (11,), "removed in trtexec 11"),
    "trtexec --stronglyTyped": ((9, 1), None, "a no-op in 11 (always on)"),
    "ICudaEngine.device_memory_size": (None, (11,), "use device_memory_size_v2 (10.1+)"),
    "ICudaEngine.device_memory_size_v2": ((10, 1), None, ""),
    "IProgressMonitor": ((9, 1), None, "IBuilderConfig.progress_monitor (pyCore.cpp, release/9.1)"),
    "ExecutionContextAllocationStrategy": ((10, 0), None, "STATIC / ON_PROFILE_CHANGE / USER_MANAGED"),
    "name_based_io": ((8, 5), None, "set_input_shape / set_tensor_address / execute_async_v3 (pyCore.cpp, "
                                    "release/8.5)"),
    "builder_optimization_level": ((8, 6), None, ""),
    "MemoryPoolType.TACTIC_DRAM": ((8, 6), None, "default 75% of memory on embedded devices"),
    "onnx_attention_op": ((10, 14), None, "ONNX Attention (opset 23) parsed from 10.14"),
    "if_rank_only_branches": ((10, 11), None, "If outputs may differ in shape (same rank) from 10.11"),
    "jetpack_support": (None, None, "10.x on JetPack 6/7; 11.4.1 on JetPack >= 7.2.2 only"),
}


@dataclass(frozen=True)
class Problem:
    """One reason a (TensorRT version, precision, path) combination cannot or should not be used."""

    severity: str  # "error" (refused) or "warning" (works, with a caveat)
    code: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.message}" + (f"; fix: {self.fix}" if self.fix else "")

    def to_dict(self) -> dict:
        return {"severity": self.severity, "code": self.code, "message": self.message, "fix": self.fix}


def parse_version(version: str | tuple[int, ...] | int) -> tuple[int, ...]:
    """'10.3.0.30' -> (10, 3, 0, 30); '11' -> (11,); (10, 3) -> (10, 3). Raises UsageError on garbage."""
    if isinstance(version, int):
        return (version,)
    if isinstance(version, tuple):
        return tuple(int(v) for v in version)
    m = re.match(r"^\s*v?(\d+(?:\.\d+)*)", str(version))
    if not m:
        raise UsageError(f"cannot read a TensorRT version from {version!r}; write it like 10.3 or 11.4.1")
    return tuple(int(p) for p in m.group(1).split("."))


def version_str(version: tuple[int, ...] | str | None, parts: int = 2) -> str:
    if version is None:
        return "unknown"
    v = parse_version(version)
    return ".".join(str(p) for p in v[:parts])


def jetpack_for_l4t(l4t: str) -> str | None:
    """The JetPack release(s) for an L4T version ('36.4.0' -> '6.1/6.2'); None when unknown."""
    parts = parse_version(l4t)
    hits = []
    for rel in JETPACK_RELEASES:
        want = parse_version(rel.l4t)
        if parts[: len(want)] == want and rel.jetpack not in hits and rel.jetpack != "7.2.2":
            hits.append(rel.jetpack)
    return "/".join(hits) if hits else None


def jetpack_release(jetpack: str) -> JetPackRelease:
    """Look up a JetPack release ('6.1', '7.2.2'); a patch level maps to its minor unless listed."""
    want = parse_version(jetpack)
    best = None
    for rel in JETPACK_RELEASES:
        v = parse_version(rel.jetpack)
        if want[: len(v)] == v or (v == (7, 2, 2) and want[:2] == (7, 2) and want >= v):
            best = rel  # later entries are more specific
    if best is None:
        known = ", ".join(r.jetpack for r in JETPACK_RELEASES)
        raise UsageError(f"unknown JetPack {jetpack!r}; known releases: {known}")
    return best


def has_api(trt_version, feature: str) -> bool:
    """Whether ``feature`` (a key of API_FEATURES) exists in that TensorRT version."""
    if feature not in API_FEATURES:
        raise KeyError(f"unknown TensorRT feature {feature!r}; known: {', '.join(API_FEATURES)}")
    since, removed, _ = API_FEATURES[feature]
    v = parse_version(trt_version)
    if since is not None and v[: len(since)] < since:
        return False
    if removed is not None and v[: len(removed)] >= removed:
        return False
    return True


def _onnx_precision_from_name(path) -> str | None:
    name = str(path).lower()
    for p in ("fp16", "int8"):
        if name.endswith(f".{p}.onnx"):
            return p
    return "fp32" if name.endswith(".onnx") else None


def check_capabilities(
    trt_version,
    precision: str,
    path: str = "python",
    *,
    onnx_precision: str | None = None,
    calibrator: bool = False,
    jetpack: str | None = None,
) -> list[Problem]:
    """Problems with building ``precision`` on ``trt_version`` through ``path`` ("python" API or "trtexec").

    ``onnx_precision`` is what the ONNX file carries: "fp32" (plain export), "fp16" (model.fp16.onnx from ONNX
    Runtime's float16 converter) or "int8" (model.int8.onnx with Q/DQ); None = unknown. ``calibrator`` = implicit INT8 calibration
    (IInt8*Calibrator / trtexec --calib). Errors mean the builder must refuse; warnings are printed.
    """
    if path not in ("python", "trtexec"):
        raise UsageError(f"path must be 'python' or 'trtexec', got {path!r}")
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if onnx_precision is not None and onnx_precision not in PRECISIONS:
        raise UsageError(f"unknown ONNX precision {onnx_precision!r}; choose one of {', '.join(PRECISIONS)}")
    v = parse_version(trt_version)
    major = v[0]
    out: list[Problem] = []
    vs = version_str(v, 3)

    if v[:2] < MIN_SUPPORTED_TRT:
        if path == "python":
            out.append(Problem("error", "trt-too-old",
                               f"TensorRT {vs} predates the TensorRT 10 name-based API this builder uses",
                               "upgrade to JetPack 6.1+ (TensorRT 10.3) or use the trtexec lines from `resvit-export plan`"))
        else:
            out.append(Problem("warning", "trt-too-old",
                               f"TensorRT {vs} is older than the oldest tested release (10.3); the trtexec lines may "
                               "need editing and ONNX opset must be <= 17",
                               "export with --opset 17 or upgrade to JetPack 6.1+"))

    if onnx_precision == "int8" and precision != "int8":
        out.append(Problem("error", "onnx-precision-mismatch",
                           f"the ONNX carries INT8 Q/DQ but precision {precision} was requested",
                           "use precision int8 with model.int8.onnx, or the plain model.onnx"))
    if onnx_precision == "fp16" and precision not in ("fp16",):
        out.append(Problem("error", "onnx-precision-mismatch",
                           f"the ONNX carries FP16 tensors but precision {precision} was requested",
                           "use precision fp16 with model.fp16.onnx, or the plain model.onnx for fp32"))

    if major >= 11:
        if calibrator:
            out.append(Problem("error", "calibrator-removed",
                               f"INT8 with an implicit calibrator is impossible on TensorRT {vs}: IInt8*Calibrator, "
                               "config.int8_calibrator and trtexec --calib were removed in TensorRT 11",
                               "quantize to Q/DQ first (`resvit-export build MODEL --int8 ...` writes model.int8.onnx) and build that"))
        if precision in ("fp16", "int8") and onnx_precision != precision:
            what = "BuilderFlag.FP16/INT8" if path == "python" else "trtexec --fp16/--int8"
            onnx = f"model.{precision}.onnx"
            have = f"the given ONNX carries {onnx_precision}" if onnx_precision else "the ONNX precision is unknown"
            out.append(Problem("error", "precision-from-onnx",
                               f"TensorRT {vs} takes precision from the ONNX ({what} were removed in 11) and {have}",
                               f"build {onnx} with `resvit-export build MODEL --{precision} ...` (fp16: ONNX Runtime's float16 converter; "
                               "int8: Q/DQ)"))
        if jetpack is not None:
            jp = parse_version(jetpack)
            if jp < (7, 2, 2):
                out.append(Problem("error", "trt11-jetpack",
                                   f"TensorRT {vs} does not support JetPack {jetpack} (11.x needs JetPack >= 7.2.2 "
                                   "via the 11.4.1 SBSA package)",
                                   "stay on the TensorRT 10.x that ships with this JetPack"))
            elif v[:3] < (11, 4, 1):
                out.append(Problem("error", "trt11-jetpack",
                                   f"TensorRT {vs} has no JetPack support (first: 11.4.1 on JetPack >= 7.2.2)",
                                   "install TensorRT 11.4.1 SBSA or use the JetPack's TensorRT 10.x"))
    else:
        if precision == "int8" and onnx_precision != "int8":
            if calibrator:
                out.append(Problem("warning", "calibrator-deprecated",
                                   f"implicit INT8 calibration is deprecated since TensorRT 10.1 and removed in 11; "
                                   f"it works on {vs} but the engine cannot be rebuilt on TensorRT 11",
                                   "prefer Q/DQ (model.int8.onnx) which works on 10.x and 11.x"))
            else:
                out.append(Problem("error", "int8-needs-calibration",
                                   f"INT8 on TensorRT {vs} needs either a Q/DQ ONNX (model.int8.onnx) or a calibrator/"
                                   "calibration cache; neither was given",
                                   "make model.int8.onnx with `resvit-export build MODEL --int8 ...` and build that"))
        if onnx_precision in ("fp16", "int8") and precision == onnx_precision and v[:2] < (9, 1):
            out.append(Problem("error", "strongly-typed-missing",
                               f"TensorRT {vs} cannot build a strongly typed network (added in 9.1)",
                               "upgrade TensorRT or build the plain model.onnx with precision flags"))
        if v[:2] >= (10, 12) and precision in ("fp16", "int8") and onnx_precision in (None, "fp32"):
            out.append(Problem("warning", "weak-typing-deprecated",
                               f"precision flags (weak typing) are deprecated since TensorRT 10.12; {vs} still "
                               "accepts them, TensorRT 11 does not",
                               f"build model.{precision}.onnx (strongly typed) to stay portable to 11.x"))
        if jetpack is not None and parse_version(jetpack) >= (7, 2, 2) and major < 10:
            out.append(Problem("warning", "jetpack-newer", f"JetPack {jetpack} ships TensorRT 10.x or newer"))
    return out
