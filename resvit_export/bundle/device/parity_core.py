"""The parity verdict with numpy and the standard library only, so the device (no torch, no Polygraphy)
reaches it exactly as the workstation does.

One implementation serves both sides:

* ``compare_outputs`` turns one case's reference and artifact outputs into the report's metrics and
  failures. Its two error statistics are pluggable: the workstation passes Polygraphy's
  ``SimpleCompareFunc`` / ``CosineSimilarityCompareFunc``; the device uses ``numpy_stats`` /
  ``numpy_cosine``, which repeat Polygraphy 0.53's formulas operation for operation (float32, the same
  epsilon, the same elementwise rule). A test feeds both the same data and asserts the same numbers.
* the verdict over all cases (``report_passed``, ``worst_case``, ``summary_line``, ``failure_line``);
* the Markdown and JUnit renderings of a report dict (the ``parity*.json`` schema).

Tolerance defaults per precision live here too (the host's ``Tolerances`` reads them).
Works with Python >= 3.8 and numpy >= 1.17.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

# precision -> atol, rtol, cos_min, top1_min (None: not gated). See validate/parity.py for the reasons.
DEFAULT_TOLERANCES = {
    "fp32": {"atol": 1e-4, "rtol": 1e-3, "cos_min": 0.99999, "top1_min": 1.0},
    "fp16": {"atol": 5e-2, "rtol": 5e-2, "cos_min": 0.999, "top1_min": 0.9},
    "int8": {"atol": None, "rtol": None, "cos_min": 0.98, "top1_min": 0.8},
}

# Keys of one case x input record in parity*.json, in order (the host's CaseResult has the same fields).
CASE_KEYS = ("name", "kind", "input", "batch", "h", "w", "tokens", "output", "max_abs", "mean_abs", "max_rel",
             "cosine", "top1", "top1_rows", "worst_row", "worst_index", "torch_ms", "ort_ms", "passed", "failures",
             "budget")

_EPSILON = 2.220446049250313e-16  # Polygraphy adds it to zeros of the second output before dividing


def numpy_stats(ref: np.ndarray, got: np.ndarray, atol: float, rtol: float) -> Dict[str, Any]:
    """Polygraphy ``SimpleCompareFunc(check_error_stat="elemwise", infinities_compare_equal=True)`` on
    float32 outputs: max/mean absolute difference, max relative difference (relative to ``got``, the
    second output, as Polygraphy does) and the elementwise verdict (an element fails when it exceeds atol
    AND rtol, NaN counting as exceeding). The differences are float32, then float64 from the point where
    Polygraphy zeroes equal infinities (its ``where(cond, 0, absdiff)`` makes the 0 an int64 array, which
    promotes under numpy 2), so the relative error and the tolerance tests are float64."""
    absdiff = np.abs(np.subtract(ref, got)).astype(np.float64)
    absdiff = np.where(np.logical_and(np.isinf(ref), ref == got), 0.0, absdiff)
    got_eps = got.copy()
    got_eps[got_eps == 0] += _EPSILON
    reldiff = np.divide(absdiff, np.abs(got_eps))
    mismatch = (np.greater(absdiff, atol) | np.isnan(absdiff)) & (np.greater(reldiff, rtol) | np.isnan(reldiff))
    return {"max_absdiff": float(np.max(absdiff)), "mean_absdiff": float(np.mean(absdiff, dtype=np.float32)),
            "max_reldiff": float(np.max(reldiff)), "passed": not bool(np.any(mismatch))}


def numpy_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Polygraphy ``CosineSimilarityCompareFunc``: the dot product over the norms, clamped to [-1, 1];
    both zero -> 1, one zero -> 0, NaN stays NaN (so it fails the gate). As Polygraphy computes it under
    numpy 2: the dot product in float32, the norms in float64 (its ``power(x, 2)`` turns the exponent into
    an int64 array, which promotes the squares to float64; squares of float32 are exact in float64)."""
    x, y = np.ravel(a), np.ravel(b)
    dot = np.sum(np.multiply(x, y))
    m1 = np.sqrt(np.sum(np.square(x.astype(np.float64))))
    m2 = np.sqrt(np.sum(np.square(y.astype(np.float64))))
    if m1 == 0 and m2 == 0:
        return 1.0
    if m1 == 0 or m2 == 0:
        return 0.0
    cos = float(dot / (m1 * m2))
    return cos if math.isnan(cos) else max(-1.0, min(1.0, cos))


StatsFn = Callable[[np.ndarray, np.ndarray, float, float], Dict[str, Any]]
CosineFn = Callable[[np.ndarray, np.ndarray], float]


def compare_outputs(ref: Dict[str, np.ndarray], got: Dict[str, np.ndarray], tol, stats: StatsFn = numpy_stats,
                    cosine: CosineFn = numpy_cosine) -> Dict[str, Any]:
    """Compare one case's outputs (name -> array, same names); ``tol`` has atol, rtol, cos_min (atol/rtol
    None: not gated). Returns the metrics of the output with the largest tolerance budget, plus
    ``failures`` (list of str)."""
    ref = {k: np.asarray(v, dtype=np.float32) for k, v in ref.items()}
    got = {k: np.asarray(got[k], dtype=np.float32) for k in ref}
    # Elementwise rule: |diff| <= atol OR rel <= rtol. A disabled (None) bound must not make the OR always true.
    off = np.inf if tol.atol is None and tol.rtol is None else 0.0
    atol = tol.atol if tol.atol is not None else off
    rtol = tol.rtol if tol.rtol is not None else off
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf and NaN are reported, not warned about
        per_output = [_compare_one(name, ref[name], got[name], tol, atol, rtol, stats, cosine) for name in ref]
    return max(per_output, key=lambda d: (d["budget"], d["max_abs"]))


def _compare_one(name, r, g, tol, atol, rtol, stats: StatsFn, cosine: CosineFn) -> Dict[str, Any]:
    if r.shape != g.shape:
        return dict(output=name, max_abs=float("inf"), mean_abs=float("inf"), max_rel=float("inf"), cosine=-1.0,
                    top1=0.0, top1_rows=0, worst_row=0, worst_index=[], budget=float("inf"),
                    failures=[f"output {name} shape {g.shape} != PyTorch {r.shape}"])
    st = stats(r, g, atol, rtol)
    rows_r = r.reshape(r.shape[0], -1) if r.ndim >= 2 else r.reshape(1, -1)
    rows_g = g.reshape(rows_r.shape)
    cos = min(cosine(rows_r[i], rows_g[i]) for i in range(rows_r.shape[0]))  # the worst batch row
    diff = np.abs(r - g)
    flat = int(np.nanargmax(diff)) if np.isfinite(diff).any() else 0
    loc = [int(i) for i in np.unravel_index(flat, r.shape)]
    if r.ndim == 2:
        top1_rows = int((r.argmax(1) == g.argmax(1)).sum())
        top1 = top1_rows / r.shape[0]
    else:
        top1_rows, top1 = rows_r.shape[0], 1.0  # not a classification output
    failures = []
    if not bool(np.isfinite(g).all()):
        failures.append(f"non-finite values in the artifact's output {name}")
    if not st["passed"] and (tol.atol is not None or tol.rtol is not None):
        failures.append(f"max-abs {st['max_absdiff']:.3g} exceeds atol {tol.atol} (rtol {tol.rtol})")
    if not (cos >= tol.cos_min):
        failures.append(f"cosine {cos:.7f} < cos-min {tol.cos_min}")
    budget = _budget(r, diff, cos, tol)
    if failures:
        budget = max(budget, 1.0 + 1e-9)
    return dict(output=name, max_abs=st["max_absdiff"], mean_abs=st["mean_absdiff"], max_rel=st["max_reldiff"],
                cosine=cos, top1=top1, top1_rows=top1_rows, worst_row=loc[0] if loc else 0, worst_index=loc[1:],
                budget=budget, failures=failures)


def _budget(r: np.ndarray, diff: np.ndarray, cos: float, tol) -> float:
    """The largest fraction of a tolerance used (> 1: a breach)."""
    budgets = []
    if tol.atol is not None or tol.rtol is not None:
        # per element the smaller of |diff|/atol and rel/rtol (the elementwise rule), worst element wins
        with np.errstate(divide="ignore", invalid="ignore"):
            use = diff / tol.atol if tol.atol else np.full(diff.shape, np.inf)
            if tol.rtol:
                use = np.minimum(use, diff / (np.abs(r) * tol.rtol))
        use = np.where(diff == 0, 0.0, use)
        if np.isfinite(use).any():
            budgets.append(float(np.nanmax(np.where(np.isfinite(use), use, np.nan))))
    if tol.cos_min < 1.0:
        budgets.append((1.0 - cos) / (1.0 - tol.cos_min))
    return max(budgets) if budgets else 0.0


def warm_latency(shapes: Sequence[object], seconds: Sequence[float]) -> Tuple[List[float], bool]:
    """Per feed, the latency of its shape: the best run at that shape after the first one.

    ``shapes[j]`` is any hashable key of feed j's input shapes; runs are in feed order. A shape that ran only
    once keeps that (cold) time. Returns (per-feed latency, True when every shape had a warm run).
    """
    runs: Dict[object, List[float]] = {}
    for key, s in zip(shapes, seconds):
        runs.setdefault(key, []).append(s)

    def best(times: List[float]) -> float:
        warm = [t for t in times[1:] if t == t]  # NaN: a run the artifact rejected
        return min(warm) if warm else times[0]

    per_shape = {k: best(v) for k, v in runs.items()}
    return [per_shape[k] for k in shapes], all(len(v) > 1 for v in runs.values())


def not_compared(output: str, failure: str) -> Dict[str, Any]:
    """Metrics of a case the artifact could not run: a failure with nothing to compare."""
    nan = float("nan")
    return dict(output=output, max_abs=nan, mean_abs=nan, max_rel=nan, cosine=nan, top1=0.0, top1_rows=0,
                worst_row=0, worst_index=[], budget=float("inf"), failures=[failure])


# --- the verdict over all cases (case records: dicts with CASE_KEYS; floats may be inf/NaN) -------------

def _key(c) -> tuple:
    return (c["budget"] if c["budget"] is not None else math.inf, c["max_abs"] if c["max_abs"] is not None else 0.0)


def worst_case(cases: Sequence[dict]) -> Optional[dict]:
    """The case that used the largest fraction of any tolerance (ties: larger max-abs)."""
    return max(cases, key=_key) if cases else None


def report_passed(cases: Sequence[dict], top1_agreement: float, top1_min: float) -> bool:
    """Every case passed, the top-1 agreement over all rows holds, and something was compared at all."""
    return bool(cases) and all(c["passed"] for c in cases) and top1_agreement >= top1_min


def summary_line(precision: str, cases: Sequence[dict], top1_agreement: float, top1_min: float,
                 extra: str = "", label: str = "parity") -> str:
    """'fp16 parity PASSED: 42 cases (0 failed), top-1 agreement 1.0000; worst ...'. ``extra`` goes inside
    the parentheses (merged or skipped counts)."""
    status = "PASSED" if report_passed(cases, top1_agreement, top1_min) else "FAILED"
    failed = sum(not c["passed"] for c in cases)
    head = (f"{precision} {label} {status}: {len(cases)} cases ({failed} failed{extra}), "
            f"top-1 agreement {top1_agreement:.4f}")
    w = worst_case(cases)
    if w is None:
        return head
    if w["budget"] is None or not math.isfinite(w["budget"]):
        return f"{head}; worst {w['name']} [{w['input']}]: {w['failures'][0] if w['failures'] else 'not comparable'}"
    return (f"{head}; worst {w['name']} [{w['input']}]: max-abs {w['max_abs']:.3g}, cos {w['cosine']:.7f}, "
            f"{w['budget'] * 100:.1f}% of tolerance")


def failure_line(cases: Sequence[dict], top1_agreement: float, top1_min: float) -> str:
    """One line naming the worst breach and where it sits (for error messages)."""
    if report_passed(cases, top1_agreement, top1_min):
        return "no breach"
    if not cases:
        return "no case was compared"
    bad = [c for c in cases if not c["passed"]]
    if bad:
        w = worst_case(bad)
        where = (f" (largest error at batch row {w['worst_row']}, "
                 f"{w['output']}[{', '.join(map(str, w['worst_index']))}])" if w["worst_index"] else "")
        return (f"{len(bad)}/{len(cases)} cases breach; worst {w['name']} [{w['input']} input]: "
                f"{'; '.join(w['failures'])}{where}")
    return f"top-1 agreement {top1_agreement:.4f} over all cases is below --top1-min {top1_min}"


def json_safe(value):
    """``value`` with every non-finite float replaced by None (strict JSON: no NaN/Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


# --- renderings of a report dict (the parity*.json schema) ----------------------------------------------

def _fmt(v, spec: str = ".2e") -> str:
    return "-" if v is None or v != v else format(v, spec)


def render_markdown(d: dict) -> str:
    """The human report: summary line, worst case, tolerances, one table row per case x input, versions."""
    tol = d["tolerances"]
    status = "PASSED" if d["passed"] else "FAILED"
    art = d.get("artifact") or {}
    label = art.get("label", "ORT")
    lines = [
        f"# Parity {status}: {d['model']} ({d['precision']})",
        "",
        f"**{d['summary']}**",
        "",
        f"- Artifact: `{art.get('path', d.get('onnx'))}` (sha256 `{str(art.get('sha256', d.get('onnx_sha256')))[:16]}…`) "
        f"on {art.get('runtime', 'ONNX Runtime CPU')}",
        f"- Reference: {d.get('reference', 'PyTorch eager FP32 on CPU')}",
        f"- Profiles: {', '.join(d['profiles'])}",
        f"- Tolerances ({d['precision']}): atol {tol['atol']}, rtol {tol['rtol']} (elementwise: |diff| ≤ atol or "
        f"rel ≤ rtol), cosine ≥ {tol['cos_min']} per case, top-1 agreement ≥ {tol['top1_min']} over all "
        f"{sum(c['batch'] for c in d['cases'])} rows (measured {d['top1_agreement']:.4f})",
        f"- Date: {d['date']}; {d['seconds']:.1f}s",
    ]
    t = d.get("timing")
    if t and t.get("concurrent") is None:  # one runtime (an engine check)
        lines.append(f"- Timing: {t['runs']}; latency = {t['latency']}")
    elif t and t.get("threads_per_side") is None:  # the reference ran elsewhere (build: during export)
        threads = t.get("threads") or {}
        lines.append(f"- Timing: {t['runs']}; PyTorch {t.get('reference')}, {threads.get('pytorch')} thread(s); "
                     f"ONNX Runtime alone, {threads.get('onnxruntime')} thread(s); latency = {t['latency']}")
    elif t:
        lines.append(f"- Timing: {t['runs']}, {'both sides at once' if t['concurrent'] else 'one side after the other'}"
                     f", {t['threads_per_side']} thread(s) each; latency = {t['latency']}")
    if d.get("split"):
        lines.append("- Run row by row (the engine's profiles do not allow their batch): "
                     + ", ".join(f"{s['name']} [{s['input']}]" for s in d["split"]))
    lines.append("")
    if not d["passed"]:
        lines += [f"**Breach:** {d['failure']}", ""]
    w = d["worst"]
    if w is not None and not w["worst_index"] and w["failures"]:
        lines += ["## Worst case", "", f"`{w['name']}` with {w['input']} input: {'; '.join(w['failures'])}", ""]
    elif w is not None:
        lines += [
            "## Worst case",
            "",
            f"`{w['name']}` with {w['input']} input: max-abs {_fmt(w['max_abs'], '.3e')} (mean "
            f"{_fmt(w['mean_abs'], '.3e')}, max-rel {_fmt(w['max_rel'], '.3e')}), cosine {_fmt(w['cosine'], '.8f')}, "
            f"top-1 {w['top1']:.2f}; largest error at batch row {w['worst_row']}, "
            f"`{w['output']}[{', '.join(map(str, w['worst_index']))}]`; "
            f"{_fmt(None if w['budget'] is None else w['budget'] * 100, '.1f')}% of the tolerance used.",
            "",
        ]
    lines += [
        "## Cases",
        "",
        "| case | kind | input | batch | H×W | tokens | max-abs | mean-abs | max-rel | cosine | top-1 | "
        f"worst at | torch ms | {label} ms | tol. used | result |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|---|",
    ]
    for c in d["cases"]:
        where = f"row {c['worst_row']}, [{', '.join(map(str, c['worst_index']))}]"
        result = "pass" if c["passed"] else "**FAIL**: " + "; ".join(c["failures"])
        used = None if c["budget"] is None else min(c["budget"], 1e6) * 100
        lines.append(
            f"| {c['name']} | {c['kind']} | {c['input']} | {c['batch']} | {c['h']}×{c['w']} | {c['tokens']} | "
            f"{_fmt(c['max_abs'])} | {_fmt(c['mean_abs'])} | {_fmt(c['max_rel'])} | {_fmt(c['cosine'], '.8f')} | "
            f"{c['top1']:.2f} | {where} | {_fmt(c['torch_ms'], '.2f')} | {_fmt(c['ort_ms'], '.2f')} | "
            f"{_fmt(used, '.1f')}% | {result} |"
        )
    if d.get("merged"):
        lines += ["", "## Merged cases (not run: the case named runs the same batch and token grid)", "",
                  "| case | H×W | batch | covered by | why |", "|---|--:|--:|---|---|"]
        lines += [f"| {m['name']} | {m['h']}×{m['w']} | {m['batch']} | {m['into']} | {m['reason']} |"
                  for m in d["merged"]]
    if d.get("skipped"):
        lines += ["", "## Skipped cases (not run on this device)", "", "| case | input | H×W | batch | why |",
                  "|---|---|--:|--:|---|"]
        lines += [f"| {s['name']} | {s['input']} | {s['h']}×{s['w']} | {s['batch']} | {s['reason']} |"
                  for s in d["skipped"]]
    lines += ["", "## Versions", ""]
    lines += [f"- {k}: {v}" for k, v in d["versions"].items()]
    return "\n".join(lines) + "\n"


def render_junit(d: dict) -> str:
    """JUnit XML: suite = the artifact, testcase = case x input; a breach is a <failure> with its reasons;
    merged and skipped cases are <skipped> so CI shows them as covered or not run, not forgotten."""
    cases: List[dict] = d["cases"]
    prec = d["precision"]
    failed = [c for c in cases if not c["passed"]]
    top1_fail = d["top1_agreement"] < d["tolerances"]["top1_min"]
    not_run = [(m["name"], "merged", f"merged into {m['into']}: {m['reason']}") for m in d.get("merged") or []]
    not_run += [(f"{s['name']} [{s['input']}]", "skipped", s["reason"]) for s in d.get("skipped") or []]
    suite = ET.Element("testsuite", name=f"resvit-export parity {d['model']} {prec}",
                       tests=str(len(cases) + len(not_run) + 1), failures=str(len(failed) + int(top1_fail)),
                       errors="0", skipped=str(len(not_run)), time=f"{d['seconds']:.3f}", timestamp=d["date"])
    for c in cases:
        secs = sum(v for v in (c["torch_ms"], c["ort_ms"]) if v is not None) / 1e3
        tc = ET.SubElement(suite, "testcase", classname=f"parity.{prec}.{c['input']}", name=c["name"],
                           time=f"{secs:.4f}")
        if not c["passed"]:
            fl = ET.SubElement(tc, "failure", message="; ".join(c["failures"]), type="ParityError")
            fl.text = (f"max-abs {_fmt(c['max_abs'], '.3e')}, cosine {_fmt(c['cosine'], '.8f')}, top-1 "
                       f"{c['top1']:.2f}; largest error at batch row {c['worst_row']}, "
                       f"{c['output']}[{', '.join(map(str, c['worst_index']))}]")
    for name, why, message in not_run:
        tc = ET.SubElement(suite, "testcase", classname=f"parity.{prec}.{why}", name=name)
        ET.SubElement(tc, "skipped", message=message)
    tc = ET.SubElement(suite, "testcase", classname=f"parity.{prec}", name="top1-agreement-all-cases")
    if top1_fail:
        ET.SubElement(tc, "failure", type="ParityError",
                      message=f"top-1 agreement {d['top1_agreement']:.4f} < {d['tolerances']['top1_min']}")
    if hasattr(ET, "indent"):  # Python 3.9+; JetPack 5 has 3.8
        ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
