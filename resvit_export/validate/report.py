"""Parity reports: parity.json (machine), parity.md (human), parity.png (error and latency vs resolution),
parity.junit.xml (one testcase per case × input, so CI systems list breaches; peers.md §4 item 2).

Non-FP32 reports carry the precision in the name (parity.fp16.json, ...), so the FP32 proof of the same
directory is never overwritten. Every file is written atomically (temp file + rename).
"""

from __future__ import annotations

import os
from pathlib import Path

from resvit_export.bundle.device import parity_core as core
from resvit_export.io import atomic_path, write_json_atomic
from resvit_export.layout import BuildLayout

__all__ = ["report_paths", "write_reports", "render_markdown", "render_junit", "plot_parity"]


def report_paths(out_dir: str | os.PathLike, precision: str = "fp32", engine: bool = False) -> dict[str, Path]:
    """{'json', 'md', 'png', 'junit'} -> path for a precision (``engine``: the engine-parity files)."""
    layout = BuildLayout(out_dir)
    name = layout.engine_parity if engine else (lambda ext: layout.parity(precision, ext))
    return {"json": name("json"), "md": name("md"), "png": name("png"), "junit": name("junit.xml")}


def render_markdown(report) -> str:
    """The human report (``bundle/device/parity_core.render_markdown``: the device renders the same)."""
    return core.render_markdown(report.to_dict())


def render_junit(report) -> str:
    """JUnit XML: suite = the artifact, testcase = case x input (``parity_core.render_junit``)."""
    return core.render_junit(report.to_dict())


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


def write_reports(report, out_dir: str | os.PathLike, engine: bool = False) -> dict[str, Path]:
    """Write parity{suffix}.json, .md, .junit.xml and .png into ``out_dir`` (``engine``: parity.engine.*);
    returns their paths."""
    paths = report_paths(out_dir, report.precision, engine)
    write_json_atomic(paths["json"], report.to_dict())
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text(render_markdown(report), encoding="utf-8")
    with atomic_path(paths["junit"]) as tmp:
        tmp.write_text(render_junit(report), encoding="utf-8")
    plot_parity(report, paths["png"])
    return paths
