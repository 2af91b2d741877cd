#!/usr/bin/env python3
"""Check an engine against PyTorch's outputs on the device, with numpy and the engine runner only (no torch).

    python3 check_engine.py model.fp16.plan                    # reference.json beside it; writes parity.engine.*
    python3 check_engine.py model.fp16.plan --reference DIR/reference.json --out DIR --precision fp16

For every case x input kind of the workstation's parity matrix it regenerates the input from its recipe
(parity_inputs.py) and checks it against the recorded sha256, runs it on the engine (the runner picks the
optimization profile that contains it), and compares the result with PyTorch's FP32 outputs at the
precision's tolerances (parity_core.py: the numbers the workstation's Polygraphy comparison gives). It writes
parity.engine.json/.md/.junit.xml (the parity*.json schema) and the verdict beside the engine
(``<engine>.check.json``, tied to its sha256: what ``resvit-export inspect`` shows), prints one PASSED/FAILED
line and exits:

    0 parity PASSED        3 parity breach       2 usage (no engine file, bad option)
    6 reference set missing, tampered with, or its inputs do not reproduce here
    7 the runner cannot start (TensorRT, CUDA bindings)        1 internal error

A case larger than the engine's profiles or the device's memory is reported SKIPPED with the reason, not a
crash; a batch the profiles do not allow (batch-1 engines) runs row by row and is listed as split.

``--runner MODULE:CLASS`` names the engine runner (default run_engine:EngineRunner, the bundle's TensorRT
runner). Any class with ``__init__(plan_path)``, ``input_name``, ``profiles`` [(min, opt, max) shapes],
``infer(x) -> {output name: array}`` and ``close()`` works: the tests put ONNX Runtime behind it, the only
line that differs from the device. ``check`` is the library entry (the workstation's validate calls it).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import os
import platform
import re
import sys
import time
from types import SimpleNamespace
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

try:  # imported as resvit_export.bundle.device.check_engine on the workstation
    from . import parity_core as core
    from .profile_select import select_profile
    from .reference_set import ReferenceError, ReferenceSet, sha256_of
except ImportError:  # run as a script from the extracted bundle
    import parity_core as core
    from profile_select import select_profile
    from reference_set import ReferenceError, ReferenceSet, sha256_of

__all__ = ["check", "write_reports", "report_names", "tolerances_for", "load_runner", "write_record", "record_path",
           "describe_record", "device_sidecar", "main"]

DEFAULT_RUNNER = "run_engine:EngineRunner"
REFERENCE_NAME = "reference.json"  # = BuildLayout.reference_set (a test keeps the two equal)
REPORT_STEM = "parity.engine"  # = BuildLayout.engine_parity
SUMS_NAME = "SHA256SUMS"
RECORD_SUFFIX = ".check.json"  # model.fp16.plan.check.json: the verdict on that engine file, beside it
# Errors that mean "this input does not fit in the device's memory" (TensorRT/CUDA/ORT wordings)
_OOM = re.compile(r"out of memory|memory allocation|cudaErrorMemoryAllocation|failed to allocate|OOM", re.I)


class UsageError(Exception):
    exit_code = 2


class RunnerError(Exception):
    exit_code = 7


def report_names(out_dir: str) -> Dict[str, str]:
    return {"json": os.path.join(out_dir, f"{REPORT_STEM}.json"), "md": os.path.join(out_dir, f"{REPORT_STEM}.md"),
            "junit": os.path.join(out_dir, f"{REPORT_STEM}.junit.xml")}


def tolerances_for(precision: str, reference: ReferenceSet, overrides: Optional[dict] = None) -> SimpleNamespace:
    """The tolerances the workstation validated ``precision`` with, else the precision's defaults; then the
    non-None ``overrides``."""
    if precision not in core.DEFAULT_TOLERANCES:
        raise UsageError(f"unknown precision {precision!r}; use one of {', '.join(core.DEFAULT_TOLERANCES)}")
    tol = dict(reference.tolerances(precision) or core.DEFAULT_TOLERANCES[precision])
    tol.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return SimpleNamespace(**tol)


def load_runner(spec: str, engine: str):
    """Instantiate ``MODULE:CLASS`` on ``engine``; failures become RunnerError (exit 7) with one line."""
    module_name, _, cls_name = spec.partition(":")
    if not module_name or not cls_name:
        raise UsageError(f"--runner {spec!r}: write MODULE:CLASS, e.g. {DEFAULT_RUNNER}")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as err:
        raise RunnerError(f"the runner {spec} cannot be loaded: {err} (on a Jetson: sudo apt install "
                          f"python3-libnvinfer; pip install numpy cuda-python)") from None
    try:
        return cls(engine)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - e.g. run_engine.DeviceError: no TensorRT, no GPU,
        # an engine built by another TensorRT version; the runner's message says what to do
        raise RunnerError(f"the runner {spec} cannot start: {err}") from None


def _fits(profiles: Sequence, shape: Sequence[int]) -> bool:
    """Some optimization profile contains ``shape``: the runner's own rule (profile_select), asked up front."""
    try:
        select_profile(profiles, shape)
    except ValueError:
        return False
    return True


def _profile_text(profiles: Sequence) -> str:
    return "; ".join(f"{'x'.join(map(str, p[0]))}..{'x'.join(map(str, p[-1]))}" for p in profiles)


def check(runner, reference: ReferenceSet, precision: str, tol, *, artifact: Optional[dict] = None,
          progress: Optional[Callable[[str], None]] = None) -> dict:
    """Run every reference case on ``runner`` and return the report dict (parity*.json schema, floats may be
    non-finite: pass it through ``core.json_safe`` before writing JSON).

    Raises:
        ReferenceError: an input does not reproduce its recorded sha256 (nothing is compared then).
    """
    started = time.monotonic()
    names = reference.output_names
    records, skipped, split, shapes, seconds = [], [], [], [], []
    rows_total = rows_agree = 0
    for i, c in enumerate(reference.cases):
        x = reference.input(i)
        runs = [x]
        if not _fits(runner.profiles, x.shape):
            row = (1,) + tuple(x.shape[1:])
            if x.shape[0] > 1 and _fits(runner.profiles, row):
                runs = [x[r:r + 1] for r in range(x.shape[0])]  # the engine serves this batch one row at a time
                split.append({"name": c["name"], "input": c["input"], "rows": int(x.shape[0])})
            else:
                skipped.append(_skip(c, f"{'x'.join(map(str, x.shape))} lies outside the engine's profiles "
                                        f"({_profile_text(runner.profiles)})"))
                _tell(progress, i, reference, "SKIPPED " + skipped[-1]["reason"])
                continue
        t0 = time.perf_counter()
        try:
            outs = [runner.infer(np.ascontiguousarray(r)) for r in runs]
        except Exception as err:  # noqa: BLE001 - the runner's own error types are unknown here
            text = " ".join(str(err).split()) or type(err).__name__
            if isinstance(err, MemoryError) or _OOM.search(text):
                skipped.append(_skip(c, f"does not fit in this device's memory: {text[:300]}"))
                _tell(progress, i, reference, "SKIPPED " + skipped[-1]["reason"])
                continue
            m = core.not_compared(names[0], f"the engine failed on this input: {text[:300]}")
            dt = float("nan")
        else:
            dt = time.perf_counter() - t0
            missing = [n for n in names if any(n not in o for o in outs)]
            if missing:
                m = core.not_compared(names[0], f"the engine has no output {', '.join(missing)} "
                                                f"(it has {', '.join(outs[0])})")
            else:
                got = {n: np.concatenate([np.asarray(o[n]) for o in outs]) for n in names}
                m = core.compare_outputs(reference.outputs(i), got, tol)
        shapes.append(tuple(r.shape for r in runs))
        seconds.append(dt)
        rows_total += c["batch"]
        rows_agree += m["top1_rows"]
        records.append({"name": c["name"], "kind": c["kind"], "input": c["input"], "batch": c["batch"], "h": c["h"],
                        "w": c["w"], "tokens": c["tokens"], "output": m["output"], "max_abs": m["max_abs"],
                        "mean_abs": m["mean_abs"], "max_rel": m["max_rel"], "cosine": m["cosine"], "top1": m["top1"],
                        "top1_rows": m["top1_rows"], "worst_row": m["worst_row"], "worst_index": m["worst_index"],
                        "torch_ms": None, "ort_ms": None, "passed": not m["failures"], "failures": m["failures"],
                        "budget": m["budget"]})
        _tell(progress, i, reference, "pass" if not m["failures"] else "FAIL " + m["failures"][0])
    latency, warm = core.warm_latency(shapes, seconds)
    for r, s in zip(records, latency):
        r["ort_ms"] = s * 1e3
    top1 = rows_agree / rows_total if rows_total else 0.0
    return _report(reference, precision, tol, records, skipped, split, top1, warm, artifact or {},
                   time.monotonic() - started)


def _tell(progress, i: int, reference: ReferenceSet, what: str) -> None:
    if progress:
        progress(f"[{i + 1}/{len(reference.cases)}] {reference.label(i)}: {what}")


def _skip(case: dict, reason: str) -> dict:
    return {"name": case["name"], "input": case["input"], "batch": case["batch"], "h": case["h"], "w": case["w"],
            "reason": reason}


def _report(reference, precision, tol, records, skipped, split, top1, warm, artifact, seconds) -> dict:
    meta = reference.meta
    extra = f", {len(skipped)} skipped" if skipped else ""
    summary = core.summary_line(precision, records, top1, tol.top1_min, extra=extra, label="engine parity")
    passed = core.report_passed(records, top1, tol.top1_min)
    failure = None if passed else core.failure_line(records, top1, tol.top1_min)
    if not records and skipped:
        failure = f"no case could run on this engine; first skip: {skipped[0]['name']}: {skipped[0]['reason']}"
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("tensorrt", "onnxruntime"):  # whatever the runner loaded; nothing is imported here
        if mod in sys.modules:
            versions[mod] = getattr(sys.modules[mod], "__version__", "?")
    return {
        "passed": passed,
        "summary": summary,
        "failure": failure,
        "model": meta.get("model"),
        "onnx": artifact.get("onnx"),
        "onnx_sha256": artifact.get("onnx_sha256"),
        "precision": precision,
        "tolerances": {k: getattr(tol, k) for k in ("atol", "rtol", "cos_min", "top1_min")},
        "profiles": meta.get("profiles", []),
        "top1_agreement": top1,
        "isolated": False,
        "reference": f"{meta.get('reference', 'PyTorch')} (reference set of {meta.get('date')}, {meta.get('host')})",
        "artifact": {"path": artifact.get("path"), "sha256": artifact.get("sha256"), "label": "engine",
                     "runtime": artifact.get("runtime", "TensorRT engine")},
        "worst": core.worst_case(records),
        "cases": records,
        "merged": meta.get("merged", []),
        "timing": {"runs": "each case ran once on the engine", "concurrent": None, "threads_per_side": None,
                   "latency": ("best run at the shape after its first (the warm-up), host to host" if warm else
                               "the first run at each shape (cold), host to host")},
        "reference_set": {"files": reference.files, "bytes": sum(os.path.getsize(os.path.join(reference.root, f))
                                                                for f in reference.files)},
        "skipped": skipped,
        "split": split,
        "seconds": seconds,
        "versions": versions,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.partial"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_reports(report: dict, out_dir: str) -> Dict[str, str]:
    """parity.engine.json/.md/.junit.xml into ``out_dir`` (written whole or not at all)."""
    os.makedirs(out_dir, exist_ok=True)
    safe = core.json_safe(report)
    paths = report_names(out_dir)
    _write_atomic(paths["json"], json.dumps(safe, indent=2) + "\n")
    _write_atomic(paths["md"], core.render_markdown(safe))
    _write_atomic(paths["junit"], core.render_junit(safe))
    return paths


def record_path(engine: str) -> str:
    return engine + RECORD_SUFFIX


def write_record(engine: str, exit_code: int, line: str, report: Optional[dict] = None,
                 report_path: Optional[str] = None) -> Optional[str]:
    """Record the check's outcome beside the engine (``<engine>.check.json``), tied to the engine's sha256, so
    ``resvit-export inspect`` can say "engine parity: PASSED 42/42 ..." - or why it did not run - without
    running anything. Nothing is written for an engine file that does not exist."""
    if not os.path.isfile(engine):
        return None
    rec = {"engine": os.path.basename(engine), "engine_sha256": sha256_of(engine), "exit_code": exit_code,
           "status": "PASSED" if exit_code == 0 else ("FAILED" if exit_code == 3 else "NOT RUN"), "line": line,
           "report": os.path.relpath(report_path, os.path.dirname(os.path.abspath(engine))) if report_path else None,
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if report is not None:
        worst = report.get("worst") or {}
        rec.update(precision=report["precision"], cases=len(report["cases"]),
                   failed=sum(not c["passed"] for c in report["cases"]), skipped=len(report.get("skipped") or []),
                   top1_agreement=report["top1_agreement"], reference=report.get("reference"),
                   runtime=(report.get("artifact") or {}).get("runtime"), summary=report["summary"],
                   failure=report.get("failure"),
                   worst={k: worst.get(k) for k in ("name", "input", "max_abs", "cosine", "budget")} if worst else None)
    path = record_path(engine)
    _write_atomic(path, json.dumps(core.json_safe(rec), indent=2) + "\n")
    return path


def describe_record(engine: str) -> str:
    """One line on what ``<engine>.check.json`` recorded for this very engine file: 'engine parity: PASSED 42/42
    (...)', 'FAILED ...', or 'not checked (why)' - a record for other engine bytes counts as not checked."""
    name = os.path.basename(engine)
    try:
        with open(record_path(engine), encoding="utf-8") as f:
            rec = json.load(f)
    except FileNotFoundError:
        return f"engine parity: not checked (no {name}{RECORD_SUFFIX}: run python3 check_engine.py {name})"
    except (OSError, ValueError) as err:
        return f"engine parity: not checked ({name}{RECORD_SUFFIX} is unreadable: {err})"
    if not isinstance(rec, dict) or rec.get("engine_sha256") != sha256_of(engine):
        return (f"engine parity: not checked ({name}{RECORD_SUFFIX} describes another engine file: {name} was "
                f"rebuilt or replaced since; run python3 check_engine.py {name})")
    try:
        return _describe(rec)
    except (KeyError, TypeError, ValueError) as err:  # a record edited by hand: say so rather than crash
        return f"engine parity: not checked ({name}{RECORD_SUFFIX} lacks or mangles {err})"


def _describe(rec: dict) -> str:
    if rec.get("cases") is None:  # the check stopped before comparing (reference set, runner)
        return f"engine parity: not checked (check_engine.py exit {rec.get('exit_code')}: {rec.get('line')})"
    n, failed, w = rec["cases"], rec["failed"], rec.get("worst") or {}
    skipped = f", {rec['skipped']} skipped" if rec.get("skipped") else ""
    if rec["status"] == "PASSED":
        worst = (f"worst cos {w['cosine']:.7f}, max-abs {w['max_abs']:.3g} at {w['name']} [{w['input']}]"
                 if w.get("cosine") is not None and w.get("max_abs") is not None else "no worst case")
        return f"engine parity: PASSED {n - failed}/{n} ({worst}{skipped}; {rec['precision']}, {rec['date']})"
    return f"engine parity: FAILED {n - failed}/{n} passed{skipped}: {rec.get('failure')} ({rec['date']})"


def _verify_sums(directory: str, names: Sequence[str]) -> None:
    """Where the bundle's SHA256SUMS lies beside the reference set, the set must match it."""
    sums_path = os.path.join(directory, SUMS_NAME)
    if not os.path.isfile(sums_path):
        return
    listed = {}
    with open(sums_path, encoding="utf-8") as f:
        for line in f:
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                listed[parts[1].lstrip("*")] = parts[0]
    for name in names:
        path = os.path.join(directory, name)
        if name in listed and os.path.isfile(path) and sha256_of(path) != listed[name]:
            raise ReferenceError(f"{name} does not match {SUMS_NAME} (tampered or corrupted; re-copy the bundle)")


def device_sidecar(engine) -> Optional[dict]:
    """build_engine.sh's ``<engine>.device.json`` (what built it, from which ONNX) when it describes this very
    engine file (its engine_sha256 matches), else None."""
    engine = str(engine)
    try:
        with open(engine + ".device.json", encoding="utf-8") as f:
            side = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(side, dict) or not os.path.isfile(engine) or side.get("engine_sha256") != sha256_of(engine):
        return None
    return side


def _artifact(engine: str, runner) -> dict:
    """The engine's path and sha256, and the ONNX it was built from when build_engine.sh left its sidecar."""
    info = {"path": engine, "sha256": sha256_of(engine) if os.path.isfile(engine) else None,
            "runtime": f"{type(runner).__module__}.{type(runner).__name__}"}
    side = device_sidecar(engine)
    if side:
        info.update(onnx=side.get("onnx"), onnx_sha256=side.get("onnx_sha256"))
    return info


def _parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("engine", help="the engine (plan) file")
    ap.add_argument("--reference", help=f"the reference set (default: {REFERENCE_NAME} beside the engine)")
    ap.add_argument("--precision", choices=sorted(core.DEFAULT_TOLERANCES),
                    help="tolerances to apply (default: from the engine's name model.PRECISION.plan, else fp32)")
    ap.add_argument("--out", help="where parity.engine.* go (default: the engine's directory)")
    ap.add_argument("--runner", default=DEFAULT_RUNNER, help=f"MODULE:CLASS of the runner (default {DEFAULT_RUNNER})")
    for flag in ("atol", "rtol", "cos-min", "top1-min"):
        ap.add_argument(f"--{flag}", type=float, default=None, help="override the tolerance")
    ap.add_argument("--quiet", action="store_true", help="no per-case lines on stderr")
    return ap.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    started = time.monotonic()
    args = _parse(argv)
    engine = args.engine
    name = f"check_engine.py {os.path.basename(engine)}"
    try:
        if not os.path.isfile(engine):
            raise UsageError(f"engine {engine} does not exist; build it first (./build_engine.sh)")
        ref_path = args.reference or os.path.join(os.path.dirname(os.path.abspath(engine)), REFERENCE_NAME)
        m = re.search(r"\.(fp32|fp16|int8)\.", os.path.basename(engine))
        precision = args.precision or (m.group(1) if m else "fp32")
        _verify_sums(os.path.dirname(os.path.abspath(ref_path)), [os.path.basename(ref_path)])
        reference = ReferenceSet(ref_path)
        _verify_sums(reference.root, [reference.meta["outputs_file"]] +
                     ([reference.meta["inputs_file"]] if reference.meta.get("inputs_file") else []))
        tol = tolerances_for(precision, reference, {"atol": args.atol, "rtol": args.rtol, "cos_min": args.cos_min,
                                                    "top1_min": args.top1_min})
        runner = load_runner(args.runner, engine)
        try:
            report = check(runner, reference, precision, tol, artifact=_artifact(engine, runner),
                           progress=None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True)))
        finally:
            close = getattr(runner, "close", None)
            if close:
                close()
        paths = write_reports(report, args.out or os.path.dirname(os.path.abspath(engine)))
    except (UsageError, ReferenceError, RunnerError) as err:
        line = f"FAILED | {time.monotonic() - started:.1f}s | {name} | {err}"
        write_record(engine, err.exit_code, line)
        print(line)
        return err.exit_code
    status = "PASSED" if report["passed"] else "FAILED"
    detail = report["summary"] if report["passed"] else report["failure"]
    line = f"{status} | {time.monotonic() - started:.1f}s | {name} | {detail}"
    code = 0 if report["passed"] else 3
    write_record(engine, code, line, report, paths["json"])
    print(line)
    return code


if __name__ == "__main__":
    sys.exit(main())
