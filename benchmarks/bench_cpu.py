"""CPU latency per family and size: PyTorch eager, the TensorRT graph on ONNX Runtime, the CPU graphs (fp32, int8).

One model per invocation (each is one short job under the CPU lock); results are merged into one JSON by model name.
Per model, in one process:

1. the TensorRT graph exactly as `build --profile 224-1792` makes it for the default target (JetPack 6: ViTAR in
   its always-compute form), timed per step (export, rewrite);
2. the CPU graphs as the CPU path makes them (ViTAR gated: ONNX Runtime runs an If with run-time shapes), chosen
   by measurement (`resvit_export.cpu.deploy.make_cpu_graphs`), timed per step;
3. per size, all runtimes interleaved (`resvit_export.cpu.timing.interleaved`): ratios come from the same rounds;
4. FLOPs (`models.flops.count_flops`) and this CPU's sgemm rate, measured at the start of the run, give the
   sgemm-bound time; at 896 px one profiled run of the CPU fp32 graph says where the rest of the time goes.

    python benchmarks/bench_cpu.py vitar_s                       # one model, sizes 224..1792
    python benchmarks/bench_cpu.py deit_s --sizes 224,448,896 --rounds 3
    python benchmarks/bench_cpu.py --plot --table                # JSON -> cpu_latency.png, README table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
DEFAULT_JSON = RESULTS / "cpu.json"
DEFAULT_PNG = RESULTS / "cpu_latency.png"
DEFAULT_SIZES = [224, 448, 896, 1344, 1792]
PROFILE = "224-1792"
RUNTIMES = ("pytorch_eager", "tensorrt_graph_ort", "cpu_fp32", "cpu_int8")
ARENA_BELOW = 1344  # ORT sessions keep their memory arena below this side (see bench_model)


def machine() -> dict:
    import onnxruntime
    import torch

    flags = set()
    model_name = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": model_name, "cores": os.cpu_count(),
            "isa": sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16"}),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


def bench_model(name: str, sizes: list[int], rounds: int, threads: int, work: Path, save=lambda partial: None) -> dict:
    """Everything measured for one model; ``save`` gets the partial result after every size (a long run that hits
    its time limit keeps what it measured)."""
    import numpy as np
    import torch

    from resvit_export.cpu.deploy import make_cpu_graphs
    from resvit_export.cpu.flops import executed_flops
    from resvit_export.cpu.session import cpu_session
    from resvit_export.cpu.sgemm import sgemm_gflops
    from resvit_export.cpu.timing import interleaved
    from resvit_export.data.photos import photo_inputs
    from resvit_export.export.onnx_export import export_onnx
    from resvit_export.graph.rewrite import RewriteContext, apply_rewrites
    from resvit_export.models import create_model, fit_to_profiles
    from resvit_export.models.flops import count_flops
    from resvit_export.profiles import parse_profile

    torch.set_num_threads(threads)
    rate = sgemm_gflops(threads)
    profile = parse_profile(PROFILE)
    steps: dict[str, float] = {}

    def export_and_rewrite(model, tag: str) -> tuple[Path, Path]:
        raw, rewritten = work / f"{tag}.onnx", work / f"{tag}.rewritten.onnx"
        t = time.perf_counter()
        export_onnx(model, raw, profile)
        steps[f"{tag}_export"] = time.perf_counter() - t
        t = time.perf_counter()
        apply_rewrites(raw, rewritten, RewriteContext([profile], patch_size=model.size_rule.patch_size))
        steps[f"{tag}_rewrite"] = time.perf_counter() - t
        return raw, rewritten

    trt_model = create_model(name, **fit_to_profiles(name, [profile], {}))
    cpu_overrides = fit_to_profiles(name, [profile], {}, runtime_if=True)
    cpu_model = create_model(name, **cpu_overrides)
    _, trt_graph = export_and_rewrite(trt_model, "tensorrt")
    gated = cpu_overrides != fit_to_profiles(name, [profile], {})
    raw, cpu_source = export_and_rewrite(cpu_model, "cpu") if gated else (work / "tensorrt.onnx", trt_graph)
    t = time.perf_counter()
    chosen = make_cpu_graphs(cpu_model, cpu_source, work / "model.cpu.onnx", work / "model.cpu.int8.onnx",
                             [profile], raw_onnx=raw, threads=threads, rounds=3)
    steps["cpu_select_and_quantize"] = time.perf_counter() - t

    graphs = {"tensorrt_graph_ort": trt_graph, "cpu_fp32": chosen.fp32_path, "cpu_int8": chosen.int8_path}
    rows = []
    for s in sizes:
        x = photo_inputs(1, s, s)
        xt = torch.from_numpy(x)
        # From 1344 px the TensorRT graph's N² scores take GBs per session; without the arena they are handed back
        sessions = {k: cpu_session(p, threads, arena=s < ARENA_BELOW) for k, p in graphs.items()}

        def eager(model=trt_model):
            with torch.inference_mode():
                model(xt)

        fns = {"pytorch_eager": eager, **{k: (lambda sess=v: sess.run(None, {"pixels": x})) for k, v in sessions.items()}}
        lat = interleaved(fns, rounds=rounds, budget_s=60.0, min_total_s=2.0)
        del sessions
        flops = count_flops(trt_model, s)
        cpu_flops = count_flops(cpu_model, s)
        ms = {k: lat[k].median_ms for k in RUNTIMES}
        row = {"size": s, "ms": {k: round(v, 3) for k, v in ms.items()},
               "samples": {k: len(lat[k].samples) for k in RUNTIMES},
               "vs_eager": {k: round(ms[k] / ms["pytorch_eager"], 4) for k in RUNTIMES},
               "gflops": round(flops / 1e9, 3), "cpu_graph_gflops": round(cpu_flops / 1e9, 3),
               "sgemm_bound_ms": round(cpu_flops / (rate * 1e9) * 1e3, 3)}
        row["cpu_fp32_vs_sgemm_bound"] = round(ms["cpu_fp32"] / row["sgemm_bound_ms"], 4)
        if s in (896, max(sizes)):  # where the time goes: one profiled run of each CPU graph (after a warm-up)
            for key, path in (("cpu_fp32", chosen.fp32_path), ("cpu_int8", chosen.int8_path)):
                ran = executed_flops(path, {"pixels": x}, threads=threads, runs=2 if s < ARENA_BELOW else 1)
                mm_us = sum(ran.time_us_by_op.get(op, 0) for op in ran.by_op)
                row[f"{key}_profile"] = {
                    "matmul_time_share": round(ran.matmul_share, 4),
                    "matmul_gflops_per_s": round(ran.total / (mm_us * 1e3), 2) if mm_us else None,
                    "top_ops_us": dict(sorted(ran.time_us_by_op.items(), key=lambda kv: -kv[1])[:8])}
        rows.append(row)
        save({"model": name, "partial": True, "rows": rows, "sgemm_gflops": round(rate, 2), "threads": threads,
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine()})
        print(f"{name:12} {s:5d}px  " + "  ".join(f"{k} {ms[k]:9.1f} ms ({row['vs_eager'][k]:.2f})" for k in RUNTIMES)
              + f"  fp32/bound {row['cpu_fp32_vs_sgemm_bound']:.2f}", flush=True)
    at224 = {}
    if gated:  # item 3 of issue 11: the always-compute TensorRT graph vs the gated graph at 224 px
        x = np.zeros((1, 3, 224, 224), np.float32)
        at224 = {"always_compute_executed_gflops": executed_flops(trt_graph, {"pixels": x}).total / 1e9,
                 "gated_executed_gflops": executed_flops(cpu_source, {"pixels": x}).total / 1e9,
                 "fitted_224_gflops": count_flops(create_model(name, max_side=224), 224) / 1e9}
        gated_sess = cpu_session(cpu_source, threads)
        always_sess = cpu_session(trt_graph, threads)
        lat = interleaved({"always_compute": lambda: always_sess.run(None, {"pixels": x}),
                           "gated": lambda: gated_sess.run(None, {"pixels": x})}, rounds=max(rounds, 15),
                          min_total_s=2.0, max_rounds=200)
        at224.update({f"{k}_ms": round(v.median_ms, 3) for k, v in lat.items()})
        at224 = {k: round(v, 4) for k, v in at224.items()}
    return {"model": name, "profile": PROFILE, "overrides": {"tensorrt": fit_to_profiles(name, [profile], {}),
                                                             "cpu": cpu_overrides},
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
            "threads": threads, "rounds": rounds, "sgemm_gflops": round(rate, 2),
            "steps_seconds": {k: round(v, 2) for k, v in steps.items()}, "cpu_choice": chosen.to_dict(),
            "rows": rows, "atm_at_224": at224}


def table(results: dict) -> str:
    """The README's markdown table: per model and size, ms per runtime and each one's time relative to eager."""
    lines = ["| model | px | eager ms | TensorRT graph on ORT | CPU fp32 | CPU int8 | int8 speed-up | fp32 / sgemm bound |",
             "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for name, entry in results["models"].items():
        for r in entry["rows"]:
            ms, rel = r["ms"], r["vs_eager"]
            lines.append(f"| {name} | {r['size']} | {ms['pytorch_eager']:.0f} | {ms['tensorrt_graph_ort']:.0f} "
                         f"({rel['tensorrt_graph_ort']:.2f}) | {ms['cpu_fp32']:.0f} ({rel['cpu_fp32']:.2f}) | "
                         f"{ms['cpu_int8']:.0f} ({rel['cpu_int8']:.2f}) | {1 / rel['cpu_int8']:.2f}x | "
                         f"{r['cpu_fp32_vs_sgemm_bound']:.2f} |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(results["models"])
    cols = min(3, len(models))
    fig, axes = plt.subplots((len(models) + cols - 1) // cols, cols, figsize=(4.2 * cols, 3.4 * ((len(models) + cols - 1) // cols)),
                             squeeze=False)
    labels = {"pytorch_eager": "PyTorch eager fp32", "tensorrt_graph_ort": "TensorRT graph on ORT",
              "cpu_fp32": "CPU graph fp32", "cpu_int8": "CPU graph int8"}
    for ax, name in zip(axes.flat, models):
        rows = results["models"][name]["rows"]
        sizes = [r["size"] for r in rows]
        for key, label in labels.items():
            ax.plot(sizes, [r["ms"][key] for r in rows], marker="o", label=label)
        ax.plot(sizes, [r["sgemm_bound_ms"] for r in rows], ls=":", color="grey", label="sgemm bound (fp32)")
        ax.set_yscale("log")
        ax.set_xticks(sizes)
        ax.set_title(name)
        ax.set_xlabel("input side (px)")
        ax.set_ylabel("latency (ms)")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(models):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"CPU latency, batch 1, {results['models'][models[0]]['threads']} threads", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", help="one registered model (omit with --plot)")
    ap.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-o", "--output", default=str(DEFAULT_JSON))
    ap.add_argument("--plot", action="store_true", help=f"draw {DEFAULT_PNG.name} from the JSON")
    ap.add_argument("--table", action="store_true", help="print the README's markdown table from the JSON")
    args = ap.parse_args(argv)
    out = Path(args.output)
    results = json.loads(out.read_text()) if out.is_file() else {"models": {}}
    if args.model:
        sizes = [int(s) for s in args.sizes.split(",")]
        out.parent.mkdir(parents=True, exist_ok=True)

        def save(entry: dict) -> None:
            results["models"][args.model] = entry
            out.write_text(json.dumps(results, indent=1) + "\n")

        with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp:
            save(bench_model(args.model, sizes, args.rounds, args.threads, Path(tmp), save))
        print(f"wrote {out}")
    if args.plot:
        print(f"wrote {plot(results, out.with_name(DEFAULT_PNG.name))}")
    if args.table:
        print(table(results))
    if not args.model and not args.plot and not args.table:
        ap.error("name a model, or pass --plot or --table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
