"""trtexec command lines for an EnginePlan, in TensorRT 10 and TensorRT 11 syntax (pure string building).

Every flag and form below is checked per version (10.3, 10.13, 11.x) by tests/conformance against a data table
transcribed from NVIDIA's samples/common/sampleOptions.cpp of each release branch:
* shapes: ``--minShapes=NAME:BxCxHxW --optShapes=.. --maxShapes=..``; several profiles by putting ``--profile=N``
  immediately before each triple (trtexec takes the shape flags at the positions right behind it).
* inference: ``--loadEngine=PLAN --useProfile=N --shapes=NAME:BxCxHxW``. Not ``--profile=N``: that is a build
  option, and trtexec rejects a ``--profile`` with no shape flags behind it ("Found invalid or missing shape spec
  at profile index 0") on 10.3, 10.13 and 11.1.
* ``--timingCacheFile=<file>`` loads and saves the timing cache; ``--memPoolSize=workspace:<N>M`` (unit M = MiB);
  ``--builderOptimizationLevel=N`` (default 3); ``--skipInference`` builds only.
* TensorRT 10: weak typing with ``--fp16`` / ``--int8`` (+ ``--calib=<cache>`` for implicit calibration, deprecated)
  on the plain FP32 ONNX; or ``--stronglyTyped`` when the ONNX already carries its precision
  (model.fp16.onnx from ONNX Runtime's float16 converter, model.int8.onnx with Q/DQ from ``build --int8``).
* TensorRT 11: ``--fp16 --int8 --calib`` are gone and ``--stronglyTyped`` is a no-op: the precision *is* the ONNX
  file (model.onnx = fp32, model.fp16.onnx, model.int8.onnx).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from resvit_export.errors import UsageError

from .planner import EnginePlan
from .versions import _onnx_precision_from_name

__all__ = ["trtexec_commands", "build_command", "run_commands", "onnx_name_for", "engine_name_for",
           "write_trtexec_script", "shape_arg"]


def onnx_name_for(precision: str, trt_major: int) -> str:
    """The ONNX file a build of ``precision`` reads: TRT 11 needs the precision-carrying file; TRT 10 int8 too."""
    if precision == "fp32" or (precision == "fp16" and trt_major < 11):
        return "model.onnx"
    return f"model.{precision}.onnx"


def engine_name_for(precision: str) -> str:
    return f"model.{precision}.plan"


def shape_arg(name: str, shape) -> str:
    return f"{name}:{'x'.join(str(int(d)) for d in shape)}"


def _q(s) -> str:
    return shlex.quote(str(s))


def build_command(
    plan: EnginePlan,
    onnx_path: str | os.PathLike,
    trt_major: int,
    *,
    engine_path: str | os.PathLike | None = None,
    timing_cache: str | os.PathLike | None = "timing.cache",
    workspace_mib: int | None = None,
    builder_optimization_level: int | None = None,
    onnx_precision: str | None = None,
    calib_cache: str | os.PathLike | None = None,
    trtexec: str = "trtexec",
) -> str:
    """One trtexec line that builds every profile of ``plan`` into one engine. Raises UsageError when the
    (TensorRT major, precision, ONNX) combination cannot work, saying which ONNX to use instead."""
    trt_major = int(trt_major)
    if trt_major not in (10, 11):
        raise UsageError(f"trtexec syntax is generated for TensorRT 10 or 11, got {trt_major}")
    onnx_prec = onnx_precision or _onnx_precision_from_name(onnx_path) or "fp32"
    prec = plan.precision
    if onnx_prec != "fp32" and onnx_prec != prec:
        raise UsageError(f"{Path(onnx_path).name} carries {onnx_prec} but the plan's precision is {prec}; "
                         f"use {onnx_name_for(prec, trt_major)}")
    args = [trtexec, f"--onnx={_q(onnx_path)}",
            f"--saveEngine={_q(engine_path or engine_name_for(prec))}"]
    for p in plan.profiles:
        s = p.shapes()
        if len(plan.profiles) > 1:
            args.append(f"--profile={p.index}")
        args += [f"--minShapes={shape_arg(plan.input_name, s['min'])}",
                 f"--optShapes={shape_arg(plan.input_name, s['opt'])}",
                 f"--maxShapes={shape_arg(plan.input_name, s['max'])}"]
    if trt_major == 10:
        if onnx_prec in ("fp16", "int8"):
            args.append("--stronglyTyped")
        elif prec == "fp16":
            args.append("--fp16")
        elif prec == "int8":
            if calib_cache is None:
                raise UsageError("INT8 from the FP32 ONNX needs a calibration cache (--calib) on TensorRT 10; "
                                 "better: build model.int8.onnx (Q/DQ), which also works on TensorRT 11")
            args += ["--int8", "--fp16", f"--calib={_q(calib_cache)}"]
    else:
        if calib_cache is not None:
            raise UsageError("TensorRT 11 removed --calib (implicit INT8 calibration); build model.int8.onnx (Q/DQ)")
        if prec != onnx_prec:
            raise UsageError(f"TensorRT 11 takes precision from the ONNX (--fp16/--int8 were removed): "
                             f"a {prec} engine needs {onnx_name_for(prec, 11)}, not {Path(onnx_path).name}")
    if timing_cache:
        args.append(f"--timingCacheFile={_q(timing_cache)}")
    if workspace_mib:
        args.append(f"--memPoolSize=workspace:{int(workspace_mib)}M")
    if builder_optimization_level is not None:
        if not 0 <= int(builder_optimization_level) <= 5:
            raise UsageError("--builderOptimizationLevel must be 0..5")
        args.append(f"--builderOptimizationLevel={int(builder_optimization_level)}")
    args.append("--skipInference")
    return " ".join(args)


def run_commands(plan: EnginePlan, engine_path: str | os.PathLike | None = None, trtexec: str = "trtexec") -> list[str]:
    """One benchmark line per profile at its opt shape (``--useProfile=N`` selects the profile at inference)."""
    engine = _q(engine_path or engine_name_for(plan.precision))
    return [f"{trtexec} --loadEngine={engine} --useProfile={p.index} "
            f"--shapes={shape_arg(plan.input_name, p.shapes()['opt'])}" for p in plan.profiles]


def trtexec_commands(plan: EnginePlan, onnx_path: str | os.PathLike, trt_major: int, **kwargs) -> list[str]:
    """[build line, run line per profile] for TensorRT ``trt_major`` (10 or 11). See ``build_command``."""
    engine = kwargs.get("engine_path")
    return [build_command(plan, onnx_path, trt_major, **kwargs), *run_commands(plan, engine)]


_SCRIPT_HEAD = """#!/usr/bin/env bash
# Generated by resvit-export: build {model} ({precision}, {n} optimization profile(s)) with trtexec.
# Run it ON THE TARGET DEVICE: plans are specific to the GPU (SM), TensorRT version and platform.
# TRT_MAJOR=10|11 overrides the detection (dpkg / python tensorrt / trtexec banner).
set -euo pipefail
cd "$(dirname "$0")"
TRTEXEC="${{TRTEXEC:-trtexec}}"
detect_trt_major() {{
  local v=""
  v=$(python3 -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null || true)
  if [ -z "$v" ] && command -v dpkg-query >/dev/null 2>&1; then
    v=$(dpkg-query -W -f='${{Version}}\\n' libnvinfer-bin tensorrt libnvinfer10 libnvinfer11 2>/dev/null | head -n1 || true)
  fi
  if [ -z "$v" ]; then
    # trtexec prints "[TensorRT v100300]" in its banner
    v=$("$TRTEXEC" --help 2>&1 | grep -o 'TensorRT v[0-9]*' | head -n1 | sed 's/TensorRT v//' || true)
    if [ -n "$v" ]; then v=$(( v / 10000 )); fi
  fi
  echo "${{v%%.*}}"
}}
TRT_MAJOR="${{TRT_MAJOR:-$(detect_trt_major)}}"
"""


def write_trtexec_script(plan: EnginePlan, onnx_path: str | os.PathLike, path: str | os.PathLike,
                         trt_majors: tuple[int, ...] = (10, 11), **kwargs) -> Path:
    """Write trtexec.sh holding a TensorRT 10 and a TensorRT 11 build line for ``onnx_path`` (relative to the
    script); the script picks the branch by the detected TensorRT major (override with TRT_MAJOR=10|11).

    A combination that cannot work (e.g. TensorRT 11 + fp16 from an FP32 ONNX) becomes an ``echo ...; exit 3``
    branch that says which ONNX file to produce instead.
    """
    from resvit_export.io import atomic_path

    body = [_SCRIPT_HEAD.format(model=plan.model or plan.family, precision=plan.precision, n=len(plan.profiles))]
    body.append('case "$TRT_MAJOR" in')
    for major in trt_majors:
        body.append(f"  {major})")
        try:
            line = build_command(plan, onnx_path, major, **kwargs)
            body.append(f'    "$TRTEXEC" {line.split(" ", 1)[1]}')
        except UsageError as err:
            body.append(f"    echo {_q(f'cannot build on TensorRT {major}: {err}')} >&2; exit 3")
        body.append("    ;;")
    body.append('  *) echo "unsupported or undetected TensorRT major \'$TRT_MAJOR\' (set TRT_MAJOR=10 or 11)" >&2; exit 3;;')
    body.append("esac")
    body.append("# benchmark each profile at its opt shape:")
    body += [f"# {line}" for line in run_commands(plan, kwargs.get("engine_path"))]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(body) + "\n")
        tmp.chmod(0o755)
    return Path(path)
