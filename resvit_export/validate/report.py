"""Parity reports: parity.json (machine), parity.md (human), parity.png (error and latency vs resolution),
parity.junit.xml (one testcase per case × input, so CI systems list breaches; peers.md §4 item 2).

Non-FP32 reports carry the precision in the name (parity.fp16.json, ...), so the FP32 proof of the same
directory is never overwritten. Every file is written atomically (temp file + rename).
"""

from __future__ import annotations

import os
from pathlib import Path

from resvit_export.io import atomic_path, write_json_atomic

__all__ = ["report_paths", "write_reports", "render_markdown", "render_junit", "plot_parity"]


def report_paths(out_dir: str | os.PathLike, precision: str = "fp32") -> dict[str, Path]:
    """{'json', 'md', 'png', 'junit'} -> path for a precision."""
    suffix = "" if precision == "fp32" else f".{precision}"
    out = Path(out_dir)
    paths = {ext: out / f"parity{suffix}.{ext}" for ext in ("json", "md", "png")}
    paths["junit"] = out / f"parity{suffix}.junit.xml"
    return paths


def _fmt(v: float, spec: str = ".2e") -> str:
    return "-" if v is None or v != v else format(v, spec)


def render_markdown(report) -> str:
    """The human report: summary line, worst case, tolerances, one table row per case × input, versions."""
    d = report.to_dict()
    tol = report.tolerances
    status = "PASSED" if report.passed else "FAILED"
    lines = [
        f"# Parity {status}: {report.model} ({report.precision})",
        "",
        f"**{report.summary_line()}**",
        "",
        f"- ONNX: `{report.onnx_path}` (sha256 `{report.onnx_sha256[:16]}…`)",
        f"- Reference: PyTorch eager FP32 on CPU; artifact: ONNX Runtime CPU"
        f"{' (isolated child process)' if report.isolated else ''}",
        f"- Profiles: {', '.join(report.profiles)}",
        f"- Tolerances ({report.precision}): atol {tol.atol}, rtol {tol.rtol} (elementwise: |diff| ≤ atol or "
        f"rel ≤ rtol), cosine ≥ {tol.cos_min} per case, top-1 agreement ≥ {tol.top1_min} over all "
        f"{sum(c.batch for c in report.cases)} rows (measured {report.top1_agreement:.4f})",
        f"- Date: {report.date}; {report.seconds:.1f}s",
    ]
    if report.timing:
        t = report.timing
        lines.append(f"- Timing: {t['runs']}, {'both sides at once' if t['concurrent'] else 'one side after the other'}, "
                     f"{t['threads_per_side']} thread(s) each; latency = {t['latency']}")
    lines.append("")
    if not report.passed:
        lines += [f"**Breach:** {report.failure_line()}", ""]
    w = report.worst
    if w is not None and not w.worst_index and w.failures:
        lines += ["## Worst case", "", f"`{w.name}` with {w.input} input: {'; '.join(w.failures)}", ""]
    elif w is not None:
        lines += [
            "## Worst case",
            "",
            f"`{w.name}` with {w.input} input: max-abs {w.max_abs:.3e} (mean {w.mean_abs:.3e}, max-rel "
            f"{w.max_rel:.3e}), cosine {w.cosine:.8f}, top-1 {w.top1:.2f}; largest error at batch row "
            f"{w.worst_row}, `{w.output}[{', '.join(map(str, w.worst_index))}]`; "
            f"{w.budget * 100:.1f}% of the tolerance used.",
            "",
        ]
    lines += [
        "## Cases",
        "",
        "| case | kind | input | batch | H×W | tokens | max-abs | mean-abs | max-rel | cosine | top-1 | "
        "worst at | torch ms | ORT ms | tol. used | result |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|---|",
    ]
    for c in report.cases:
        where = f"row {c.worst_row}, [{', '.join(map(str, c.worst_index))}]"
        result = "pass" if c.passed else "**FAIL**: " + "; ".join(c.failures)
        lines.append(
            f"| {c.name} | {c.kind} | {c.input} | {c.batch} | {c.h}×{c.w} | {c.tokens} | {_fmt(c.max_abs)} | "
            f"{_fmt(c.mean_abs)} | {_fmt(c.max_rel)} | {_fmt(c.cosine, '.8f')} | {c.top1:.2f} | {where} | "
            f"{c.torch_ms:.2f} | {_fmt(c.ort_ms, '.2f')} | {_fmt(min(c.budget, 1e6) * 100, '.1f')}% | {result} |"
        )
    if report.merged:
        lines += ["", "## Merged cases (not run: the case named runs the same batch and token grid)", "",
                  "| case | H×W | batch | covered by | why |", "|---|--:|--:|---|---|"]
        lines += [f"| {m.case.name} | {m.case.h}×{m.case.w} | {m.case.batch} | {m.into} | {m.reason} |"
                  for m in report.merged]
    lines += ["", "## Versions", ""]
    lines += [f"- {k}: {v}" for k, v in d["versions"].items()]
    return "\n".join(lines) + "\n"


def render_junit(report) -> str:
    """JUnit XML: suite = the artifact, testcase = case × input; a breach is a <failure> with its reasons."""
    import xml.etree.ElementTree as ET

    failed = report.failed_cases
    top1_fail = report.top1_agreement < report.tolerances.top1_min
    suite = ET.Element("testsuite", name=f"resvit-export parity {report.model} {report.precision}",
                       tests=str(len(report.cases) + len(report.merged) + 1),
                       failures=str(len(failed) + int(top1_fail)), errors="0", skipped=str(len(report.merged)),
                       time=f"{report.seconds:.3f}", timestamp=report.date)
    for c in report.cases:
        tc = ET.SubElement(suite, "testcase", classname=f"parity.{report.precision}.{c.input}", name=c.name,
                           time=f"{(c.torch_ms + c.ort_ms) / 1e3:.4f}")
        if not c.passed:
            fl = ET.SubElement(tc, "failure", message="; ".join(c.failures), type="ParityError")
            fl.text = (f"max-abs {c.max_abs:.3e}, cosine {c.cosine:.8f}, top-1 {c.top1:.2f}; largest error at "
                       f"batch row {c.worst_row}, {c.output}[{', '.join(map(str, c.worst_index))}]")
    for m in report.merged:  # listed as skipped so CI shows the case is covered, not forgotten
        tc = ET.SubElement(suite, "testcase", classname=f"parity.{report.precision}.merged", name=m.case.name)
        ET.SubElement(tc, "skipped", message=f"merged into {m.into}: {m.reason}")
    tc = ET.SubElement(suite, "testcase", classname=f"parity.{report.precision}", name="top1-agreement-all-cases")
    if top1_fail:
        ET.SubElement(tc, "failure", type="ParityError",
                      message=f"top-1 agreement {report.top1_agreement:.4f} < {report.tolerances.top1_min}")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def plot_parity(report, path: str | os.PathLike) -> Path:
    """Two panels against token count: max-abs error and 1-cosine (log scale), latency PyTorch vs ORT."""
    from resvit_export._optional import require

    mpl = require("matplotlib")
    mpl.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax_err, ax_lat) = plt.subplots(1, 2, figsize=(12, 4.6), dpi=110)
    markers = {"gaussian": "o", "synthetic": "s"}
    tol = report.tolerances
    floor = 1e-10  # exact agreement is drawn at the floor
    for kind, marker in markers.items():
        cs = sorted((c for c in report.cases if c.input == kind), key=lambda c: c.tokens)
        if not cs:
            continue
        tok = np.array([c.tokens for c in cs])
        ax_err.scatter(tok, [max(c.max_abs, floor) for c in cs], marker=marker, color="tab:red",
                       label=f"max-abs ({kind})", alpha=0.75)
        ax_err.scatter(tok, [max(1 - c.cosine, floor) for c in cs], marker=marker, color="tab:blue",
                       facecolors="none", label=f"1 − cosine ({kind})", alpha=0.9)
        bad = [c for c in cs if not c.passed]
        if bad:
            ax_err.scatter([c.tokens for c in bad], [max(c.max_abs, floor) for c in bad], marker="x", s=90,
                           color="black", label=f"breach ({kind})", zorder=5)
    # latency does not depend on the pixel values: one point per (H, W) at the smallest batch
    lat: dict[tuple[int, int], list] = {}
    for c in report.cases:
        lat.setdefault((c.h, c.w, c.batch), []).append(c)
    b_min = min((c.batch for c in report.cases), default=1)
    pts = sorted((cs[0].tokens, min(x.torch_ms for x in cs), min(x.ort_ms for x in cs))
                 for (h, w, b), cs in lat.items() if b == b_min)
    if pts:
        tok, t_ms, o_ms = (np.array(v) for v in zip(*pts))
        ax_lat.scatter(tok, t_ms, color="tab:orange", marker="o", label="PyTorch eager FP32")
        ax_lat.scatter(tok, o_ms, color="tab:green", marker="^", label=f"ONNX Runtime CPU ({report.precision})")
    if tol.atol:
        ax_err.axhline(tol.atol, color="tab:red", ls="--", lw=1, label=f"atol {tol.atol:g}")
    if tol.cos_min < 1:
        ax_err.axhline(1 - tol.cos_min, color="tab:blue", ls=":", lw=1, label=f"1 − cos-min {1 - tol.cos_min:.0e}")
    ax_err.text(0.01, 0.01, "points on the bottom line: exact (1 − cosine rounds to 0)", transform=ax_err.transAxes,
                fontsize=7, color="gray", va="bottom")
    ax_err.set_yscale("log")
    ax_err.set_xscale("log")
    ax_err.set_xlabel("patch tokens (H/p × W/p)")
    ax_err.set_ylabel("error vs PyTorch FP32")
    ax_err.set_title("Error vs resolution")
    ax_err.grid(True, which="both", alpha=0.3)
    ax_err.legend(fontsize=7, loc="best")
    ax_lat.set_xscale("log")
    ax_lat.set_yscale("log")
    ax_lat.set_xlabel("patch tokens (H/p × W/p)")
    ax_lat.set_ylabel(f"latency, warm compared run (ms, batch {b_min})")
    ax_lat.set_title("Latency vs resolution (CPU)")
    ax_lat.grid(True, which="both", alpha=0.3)
    ax_lat.legend(fontsize=7, loc="best")
    status = "PASSED" if report.passed else "FAILED"
    fig.suptitle(f"{report.model} · {report.precision} parity {status} · {len(report.cases)} cases", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def write_reports(report, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write parity{suffix}.json, .md, .junit.xml and .png into ``out_dir``; returns their paths."""
    paths = report_paths(out_dir, report.precision)
    write_json_atomic(paths["json"], report.to_dict())
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text(render_markdown(report), encoding="utf-8")
    with atomic_path(paths["junit"]) as tmp:
        tmp.write_text(render_junit(report), encoding="utf-8")
    plot_parity(report, paths["png"])
    return paths
