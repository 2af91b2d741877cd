"""Wall time of `resvit-export build --profile 224-1792` per family (CPU, ONNX Runtime, engine deferred).

Runs the real CLI in a subprocess per model and records its wall time, status.json, per-step seconds, each step's
share of the wall time and the parity matrix's case count. Goals: ViTAR-S completes in under 3 minutes on the
2-core CI machine (export issue); for vitar_s 224-1792, validate takes at most 20 % of the build and the whole build
under 2 minutes, with the same 44 cases PASSED (issue 11).

    python benchmarks/bench_build.py                      # the default model list below
    python benchmarks/bench_build.py --models vitar_s -o benchmarks/results/build_vitar_s.json
    python benchmarks/bench_build.py --models vitar_s --args "--target cpu"   # plus the CPU deployment step
    python benchmarks/bench_build.py --models vitar_s --repeat 3   # medians: this machine's wall times vary

Each row also records how PyTorch's side of the matrix ran (``reference``: ahead, in a child process during
export, or in validate beside ONNX Runtime) and the seconds that child was busy, so the validate share is read
next to the work moved out of the step.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

# Paper sizes where the cost over 224-1792 is flat (ViTAR merges to 14x14, RIViT pools to 256 tokens); tiny
# variants for the N²-cost families: at S size each 1792 px parity case costs minutes on 2 cores (one DeiT-S
# forward at 1792 px is ~25 s in eager and in ONNX Runtime, see latency.json), so their full S matrix is
# `--models deit_s` territory, not a default run.
DEFAULT_MODELS = ["vitar_s", "rivit", "resformer_test", "navit_test", "deit_test", "vitar_test", "rivit_test"]
GOALS_S = {"vitar_s": 180.0}
# issue 11: the proof must be cheap enough for every change
VALIDATE_SHARE_GOAL = {"vitar_s": 0.20}
WALL_GOAL_ISSUE11_S = {"vitar_s": 120.0}


def parity_cases(out_dir: Path) -> dict:
    """How many cases the fp32 parity matrix ran (and merged) and whether it passed, from parity.json."""
    path = out_dir / "parity.json"
    if not path.is_file():
        return {}
    report = json.loads(path.read_text())
    cases = report.get("cases", [])
    return {"passed": report.get("passed"), "case_kinds": len(cases),
            "cases": len({c.get("name") for c in cases}) + len(report.get("merged", [])),
            "merged": len(report.get("merged", []))}


def reference_timing(out_dir: Path) -> dict:
    """Where PyTorch's side of the fp32 matrix ran and for how long (parity.json's timing note)."""
    path = out_dir / "parity.json"
    timing = json.loads(path.read_text()).get("timing", {}) if path.is_file() else {}
    return {k: timing.get(k) for k in ("reference", "reference_busy_s", "threads")}


def summarize(rows: list[dict]) -> dict:
    """Per model: median, min and max of wall, validate seconds and validate share over its builds."""
    import statistics

    out = {}
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name and r["exit_code"] == 0]
        if not mine:
            continue
        series = {"wall_seconds": [r["wall_seconds"] for r in mine],
                  "validate_seconds": [r["steps"].get("validate", 0.0) for r in mine],
                  "validate_share": [r["step_share"].get("validate", 0.0) for r in mine]}
        out[name] = {"builds": len(mine), **{k: {"median": statistics.median(v), "min": min(v), "max": max(v)}
                                             for k, v in series.items()}}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--profile", default="224-1792")
    ap.add_argument("--args", default="", help="extra build arguments, e.g. \"--target cpu\"")
    ap.add_argument("--repeat", type=int, default=1, help="builds per model (rows each; medians in 'summary')")
    ap.add_argument("-o", "--output", default=str(Path(__file__).parent / "results" / "build.json"))
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in ((m, r) for m in args.models.split(",") for r in range(args.repeat)):
            out_dir = Path(tmp) / f"{name}.{run}"
            cmd = [sys.executable, "-m", "resvit_export.cli", "build", name, "--profile", args.profile, "-o", str(out_dir),
                   *args.args.split()]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            status = json.loads((out_dir / "status.json").read_text()) if (out_dir / "status.json").exists() else {}
            status = {**status, **status.get("details", {})}  # status.json keeps per-command fields in details
            row = {"model": name, "run": run, "profile": args.profile, "wall_seconds": wall,
                   "exit_code": proc.returncode,
                   "status": status.get("status"), "engine": status.get("engine"),
                   "args": args.args,
                   "steps": {s["name"]: round(s["seconds"], 2) for s in status.get("steps", [])},
                   "goal_seconds": GOALS_S.get(name),
                   "goal_met": None if name not in GOALS_S else wall <= GOALS_S[name],
                   "parity": parity_cases(out_dir),
                   "reference": reference_timing(out_dir),
                   "details": {s["name"]: s.get("detail", "") for s in status.get("steps", [])}}
            row["step_share"] = {k: round(v / wall, 4) for k, v in row["steps"].items()}
            if name in VALIDATE_SHARE_GOAL:
                share = row["step_share"].get("validate")
                row["issue11"] = {"validate_share": share, "validate_share_goal": VALIDATE_SHARE_GOAL[name],
                                  "validate_share_met": share is not None and share <= VALIDATE_SHARE_GOAL[name],
                                  "wall_goal_seconds": WALL_GOAL_ISSUE11_S[name],
                                  "wall_met": wall <= WALL_GOAL_ISSUE11_S[name]}
            rows.append(row)
            print(f"{name:12} exit {proc.returncode}  {status.get('status')}  {wall:7.1f}s  "
                  + " ".join(f"{k}={v}s ({row['step_share'][k]:.0%})" for k, v in row["steps"].items())
                  + f"  parity {row['parity']}", flush=True)
            if proc.returncode:
                print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n")
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": {"platform": platform.platform(), "cpus": __import__("os").cpu_count()}, "rows": rows,
              "summary": summarize(rows)}
    for name, summ in result["summary"].items():
        print(f"{name:12} median of {summ['builds']}: wall {summ['wall_seconds']['median']:.1f}s, validate "
              f"{summ['validate_seconds']['median']:.1f}s = {summ['validate_share']['median']:.1%} "
              f"(range {summ['validate_share']['min']:.1%}-{summ['validate_share']['max']:.1%})")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if all(r["exit_code"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
