"""Runs in a child process whose path holds ONE real TensorRT bindings wheel (tests/conformance/trt_wheels.py sets
PYTHONPATH to the unpacked wheel and LD_LIBRARY_PATH to the NULL-returning stub libraries). Prints one JSON object:
the TensorRT version, what was checked and every failure, each naming the API and where the project uses it.

It proves names, kinds and signatures, and runs the project's own TensorRT-facing code up to the first factory
call, which the stubs make fail: no network, config or engine is ever created.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import traceback
from pathlib import Path

import api_surface

_SIGNATURE = re.compile(r"^(?:\d+\. )?(\w+)\((.*)\)(?: -> .*)?$")


def _split_params(text: str) -> list[str]:
    """Top-level comma split of a pybind11 parameter list (types such as tuple[int, int] hold commas)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[("
        depth -= ch in "])"
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def overloads(obj, name: str) -> list[list[tuple[str, bool]]]:
    """[(parameter name, has default), ...] per overload, from the pybind11 docstring; ``self`` dropped."""
    out = []
    for line in (obj.__doc__ or "").splitlines():
        m = _SIGNATURE.match(line.strip())
        if not m or m.group(1) != name or m.group(2).startswith("*args"):
            continue
        params = []
        for p in _split_params(m.group(2)):
            pname = p.split(":")[0].split("=")[0].strip()
            if pname and pname not in ("self", "/", "*"):
                params.append((pname, "=" in p))
        out.append(params)
    return out


def resolve(trt, dotted: str):
    obj = trt
    for part in dotted.split("."):
        if isinstance(obj, type):
            for klass in obj.__mro__:  # class attribute lookup without triggering descriptors
                if part in vars(klass):
                    obj = vars(klass)[part]
                    break
            else:
                if not hasattr(obj, part):
                    return None
                obj = getattr(obj, part)
        elif hasattr(obj, part):
            obj = getattr(obj, part)
        else:
            return None
    return obj


def check(trt, api: api_surface.Api, version: tuple[int, ...]) -> str | None:
    obj = resolve(trt, api.name)
    if not api.expected(version):
        return None if obj is None else f"{api.name} exists, but the project's data says it is gone in this version"
    if obj is None:
        return None if api.guarded else f"{api.name} is missing (used by {api.where})"
    if api.kind == "class" and not isinstance(obj, type):
        return f"{api.name} is not a class ({type(obj).__name__})"
    if api.kind == "enum" and not hasattr(type(obj), "__members__"):
        return f"{api.name} is not an enum member ({type(obj).__name__})"
    if api.kind == "property":
        if not isinstance(obj, property):
            return f"{api.name} is not a property but a {type(obj).__name__}: called where it is read, or vice versa"
        if api.settable and obj.fset is None:
            return f"{api.name} is read-only, but {api.where} assigns it"
    if api.kind in ("method", "function"):
        if isinstance(obj, property) or not callable(obj):
            return f"{api.name} is not callable ({type(obj).__name__})"
        if api.args is not None:
            sigs = overloads(obj, api.name.split(".")[-1])
            if not sigs:
                return f"{api.name}: no pybind11 signature in its docstring"
            want = list(api.args)
            if not any([n for n, _ in s[:len(want)]] == want and all(d for _, d in s[len(want):]) for s in sigs):
                found = " | ".join("(" + ", ".join(n + ("=..." if d else "") for n, d in s) + ")" for s in sigs)
                return f"{api.name}({', '.join(want)}) matches no overload; the module has {found}"
    return None


def _expect(failures: list[str], what: str, fn, exc_type, text: str) -> None:
    """Run ``fn``; it must raise ``exc_type`` whose message contains ``text``."""
    try:
        fn()
    except exc_type as err:
        if text not in str(err):
            failures.append(f"{what}: raised {type(err).__name__} without {text!r}: {err}")
        return
    except Exception as err:  # noqa: BLE001 - report what happened instead
        failures.append(f"{what}: raised {type(err).__name__}: {err}")
        return
    failures.append(f"{what}: raised nothing")


def run_project_code(trt, version: tuple[int, ...], failures: list[str]) -> int:
    """The project's TensorRT-facing code against this module. Returns how many checks ran."""
    from polygraphy.backend.trt import CreateConfig

    from resvit_export.bundle.device.run_engine import DeviceError
    from resvit_export.bundle.device.run_engine import EngineRunner as DeviceRunner
    from resvit_export.errors import EngineBuildError, UsageError
    from resvit_export.profiles import parse_batch, parse_profile
    from resvit_export.trt import builder
    from resvit_export.trt.memory import ModelSpec
    from resvit_export.trt.planner import plan_engine
    from resvit_export.trt.runner import EngineRunner as HostRunner

    plan32 = plan_engine([parse_profile("224-1024")], ModelSpec("deit", 32, 2, 2), batch=parse_batch("1-4@1"),
                         precision="fp32")
    plan16 = plan_engine([parse_profile("224-1024")], ModelSpec("deit", 32, 2, 2), precision="fp16")
    ran = 0

    # progress monitor: a real IProgressMonitor subclass instance, its callbacks reach ProgressState
    lines: list[str] = []
    state = builder.ProgressState(lines.append, min_interval=0.0)
    monitor = builder.make_progress_monitor(state)
    ran += 1
    if not isinstance(monitor, trt.IProgressMonitor):
        failures.append("make_progress_monitor did not return a trt.IProgressMonitor")
    monitor.phase_start("Building engine", None, 2)
    if monitor.step_complete("Building engine", 0) is not True or state.events != [("start", "Building engine")]:
        failures.append(f"progress monitor callbacks did not reach ProgressState: {state.events} {lines}")

    # CreateConfig receives real TensorRT enum keys and the monitor (its constructor makes no TensorRT call)
    settings = builder.build_settings(plan32, "fp32", trt.__version__, workspace_bytes=1 << 30,
                                      tactic_dram_bytes=1 << 31)
    pools = builder._memory_pool_limits(settings)
    ran += 1
    if sorted(str(k) for k in pools) != sorted(str(k) for k in (trt.MemoryPoolType.WORKSPACE,
                                                                 trt.MemoryPoolType.TACTIC_DRAM)):
        failures.append(f"memory pool keys are not MemoryPoolType members: {pools}")
    CreateConfig(**builder.create_config_kwargs(settings), memory_pool_limits=pools, progress_monitor=monitor)

    with tempfile.TemporaryDirectory() as tmp:
        onnx = Path(tmp, "model.onnx")
        onnx.write_bytes(b"never parsed: the builder cannot be created first")
        out = Path(tmp, "out")
        ran += 1
        # the NULL factory = TensorRT present, CUDA absent: the message must say so (K6), and nothing is written
        _expect(failures, "build_engines on a host without a GPU",
                lambda: builder.build_engines(onnx, plan32, out, report=lambda s: None), EngineBuildError,
                "could not create a builder")
        if out.exists():
            failures.append("build_engines wrote into the output directory before failing")
        if version >= (11,):
            ran += 1
            _expect(failures, "fp16 from an FP32 ONNX on TensorRT 11",
                    lambda: builder.build_engines(onnx, plan16, out, report=lambda s: None), UsageError,
                    "takes precision from the ONNX")
        plan_file = Path(tmp, "model.fp32.plan")
        plan_file.write_bytes(b"never deserialized: the runtime cannot be created first")
        ran += 2
        _expect(failures, "host EngineRunner without a GPU",
                lambda: HostRunner(plan_file, check_manifest=False), EngineBuildError, "could not create a runtime")
        _expect(failures, "device EngineRunner without a GPU", lambda: DeviceRunner(str(plan_file)), DeviceError,
                "could not create a runtime")
    return ran


def main() -> None:
    import tensorrt_bindings as trt  # the wheel's package; the tensorrt meta-package only re-exports it

    sys.modules["tensorrt"] = trt
    version = tuple(int(p) for p in trt.__version__.split("."))
    failures: list[str] = []
    checked = 0
    for group, apis in (("project", api_surface.PROJECT), ("polygraphy", api_surface.POLYGRAPHY)):
        for api in apis:
            checked += 1
            problem = check(trt, api, version)
            if problem:
                failures.append(f"[{group}] {problem}")

    from resvit_export.trt.versions import has_api

    for feature, dotted in api_surface.FEATURE_NAMES.items():
        checked += 1
        exists = resolve(trt, dotted) is not None
        if exists != has_api(version, feature):
            failures.append(f"[versions.API_FEATURES] {feature}: has_api says {has_api(version, feature)}, the "
                            f"module {'has' if exists else 'lacks'} {dotted}")
    try:
        checked += run_project_code(trt, version, failures)
    except Exception:  # noqa: BLE001 - any crash of the project's code is a finding, with its traceback
        failures.append("[project code] " + traceback.format_exc(limit=6))
    print(json.dumps({"version": trt.__version__, "checked": checked, "failures": failures}))


if __name__ == "__main__":
    main()
