"""Profile planner: ``--profile 224-1792`` (+ batch, precision, device) -> an EnginePlan of TensorRT profiles.

Pure Python: no TensorRT, no GPU. The builder, the trtexec emitter and the bundle all consume the same plan.

Band rule (how a wide range is split)
-------------------------------------
A range is split into *bands by token count* N = (H/p)(W/p), cutting at N = 1024 * 4^k (32x32, 64x64, 128x128
patches; 512, 1024, 2048 px for p=16), and any band spanning less than 2x in tokens is merged into its
neighbour. For 224-1792 (N = 196 .. 12,544) this gives 224-512, 512-1024, 1024-1792 (token ratios 5.2, 4, 3.1).

* **Why token count, not pixels or sides:** a ViT's cost and memory are functions of N (linear layers ~ N,
  attention ~ N^2); a 256x1024 image and a 512x512 image have the same N and the same kernels. Cutting on N
  treats square and non-square ranges alike.
* **Why these cuts:** TensorRT times tactics at the profile's *opt* shape and only guarantees validity over
  [min, max]; the farther an input is from opt, the more a tuned tactic loses. A band <= ~4-5x in N keeps every
  input within ~2x of opt in N (geometric-mean opt), i.e. within ~4x of opt in attention cost. Memory also
  matters: each context reserves activations for its profile's max (ExecutionContextAllocationStrategy, TRT 10+),
  so a single 224-1792 profile makes a 224 px request pay for 1792 px (N^2: ~4,000x the attention buffer).
  Powers-of-two patch grids (32, 64, 128) also align with GEMM/attention tile sizes (multiples of 64/128 tokens).
  A minimum band ratio of 2 avoids a sliver band (e.g. 512-560) that costs a profile, build time and plan size
  for no gain.
* **opt per band** = the shape along the min->max diagonal whose N is the geometric mean of the band's token
  bounds (224-512 -> 352, 512-1024 -> 720, 1024-1792 -> 1360 px), rounded to a patch multiple. A profile's
  ``@opt`` overrides the opt of the tightest band containing it.
* **Non-square ranges:** cut points lie on the geometric diagonal from (h_min, w_min) to (h_max, w_max), so
  224x320-1792x1024 cuts at 512x512 and 1024x1024 (N = 1024, 4096).
* **Layout "nested" (default):** every band's *min* is the range's min; only max/opt differ. TensorRT profiles
  are boxes, and disjoint boxes along the diagonal would leave off-diagonal inputs (1792x224 inside a
  224-1792 range) in no profile at all. Nesting costs little: the context's memory is set by max, kernels are
  timed at opt, and the runner picks the *tightest* profile that contains the input
  (``runner.select_profile``). ``layout="disjoint"`` gives boxes [cut_k, cut_k+1] (square-ish inputs only).
* **Degenerate ranges** (min == max) become one static profile; a trtexec-form profile (``x:1x3x..,..,..``) is
  taken verbatim (the user wrote min/opt/max explicitly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from resvit_export.errors import UsageError
from resvit_export.profiles import BatchRange, ResolutionProfile

from .devices import DevicePreset, format_bytes, get_device
from .memory import MemoryEstimate, ModelSpec, estimate_memory, largest_fitting, tokens_for
from .versions import PRECISIONS

__all__ = ["PlannedProfile", "EnginePlan", "plan_engine", "plan_profiles", "format_plan", "band_token_bounds", "TOKEN_CUTS", "MIN_BAND_RATIO",
           "DEFAULT_INPUT_NAME", "BAND_RULE"]

TOKEN_CUTS = tuple(1024 * 4**k for k in range(6))  # 1024, 4096, 16384, ...
MIN_BAND_RATIO = 2.0
DEFAULT_INPUT_NAME = "pixels"
BAND_RULE = ("token-count bands cut at N=1024*4^k (32/64/128-patch grids), bands < 2x in N merged; "
             "opt at the geometric mean of each band's token bounds")


@dataclass(frozen=True)
class PlannedProfile:
    index: int
    min: tuple[int, int]
    opt: tuple[int, int]
    max: tuple[int, int]
    batch: BatchRange
    tokens: tuple[int, int]  # the band's token interval (lo, hi)
    source: str  # the user profile it came from
    memory: MemoryEstimate | None = None
    fits: bool | None = None  # None: no budget given

    @property
    def static(self) -> bool:
        return self.min == self.max and self.batch.min == self.batch.max

    def shapes(self) -> dict[str, tuple[int, int, int, int]]:
        b = self.batch
        return {"min": (b.min, 3, *self.min), "opt": (b.opt, 3, *self.opt), "max": (b.max, 3, *self.max)}

    def contains(self, batch: int, h: int, w: int) -> bool:
        return (self.batch.min <= batch <= self.batch.max and self.min[0] <= h <= self.max[0]
                and self.min[1] <= w <= self.max[1])

    def label(self) -> str:
        def hw(v):
            return f"{v[0]}" if v[0] == v[1] else f"{v[0]}x{v[1]}"
        return f"{hw(self.min)}-{hw(self.max)}@{hw(self.opt)}"

    def to_dict(self) -> dict:
        return {
            "index": self.index, "min": list(self.min), "opt": list(self.opt), "max": list(self.max),
            "batch": {"min": self.batch.min, "opt": self.batch.opt, "max": self.batch.max},
            "tokens": list(self.tokens), "source": self.source, "static": self.static,
            "shapes": {k: list(v) for k, v in self.shapes().items()},
            "memory": self.memory.to_dict() if self.memory else None, "fits": self.fits,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "PlannedProfile":
        mem = d.get("memory")
        if mem:
            mem = MemoryEstimate(**{k: v for k, v in mem.items() if k not in ("activation_bytes", "total_bytes")})
        b = d["batch"]
        return cls(int(d["index"]), tuple(d["min"]), tuple(d["opt"]), tuple(d["max"]),
                   BatchRange(b["min"], b["opt"], b["max"]), tuple(d["tokens"]), d.get("source", ""), mem,
                   d.get("fits"))


@dataclass
class EnginePlan:
    model: str
    family: str
    precision: str
    input_name: str
    patch_size: int
    profiles: list[PlannedProfile]
    fused_mha: bool = False
    layout: str = "nested"
    device: dict | None = None
    budget_bytes: int | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    band_rule: str = BAND_RULE

    def to_dict(self) -> dict:
        return {
            "schema": "resvit-export/engine-plan@1",
            "model": self.model, "family": self.family, "precision": self.precision,
            "input_name": self.input_name, "patch_size": self.patch_size, "layout": self.layout,
            "band_rule": self.band_rule,
            "assumptions": {"fused_mha": self.fused_mha,
                            "memory_model": "one block's peak working set + stem + weights + 600 MiB runtime"},
            "device": self.device, "budget_bytes": self.budget_bytes,
            "profiles": [p.to_dict() for p in self.profiles],
            "warnings": list(self.warnings), "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "EnginePlan":
        if not isinstance(d, dict) or "profiles" not in d:
            raise UsageError("not an engine plan (expected a plan.json written by `resvit-export plan`)")
        return cls(model=d.get("model", ""), family=d.get("family", ""), precision=d["precision"],
                   input_name=d.get("input_name", DEFAULT_INPUT_NAME), patch_size=int(d.get("patch_size", 16)),
                   profiles=[PlannedProfile.from_dict(p) for p in d["profiles"]],
                   fused_mha=bool(d.get("assumptions", {}).get("fused_mha", False)), layout=d.get("layout", "nested"),
                   device=d.get("device"), budget_bytes=d.get("budget_bytes"), warnings=list(d.get("warnings", [])),
                   notes=list(d.get("notes", [])), band_rule=d.get("band_rule", BAND_RULE))

    @property
    def max_total_bytes(self) -> int | None:
        ests = [p.memory.total_bytes for p in self.profiles if p.memory]
        return max(ests) if ests else None


def band_token_bounds(n_min: int, n_max: int, cuts: Sequence[int] = TOKEN_CUTS,
                      min_ratio: float = MIN_BAND_RATIO) -> list[tuple[int, int]]:
    """Split [n_min, n_max] tokens at ``cuts``; merge bands narrower than ``min_ratio`` (see module docstring)."""
    if n_min <= 0 or n_max < n_min:
        raise UsageError(f"bad token range {n_min}..{n_max}")
    bounds = [n_min] + [c for c in cuts if n_min < c < n_max] + [n_max]
    if n_max == n_min:
        return [(n_min, n_max)]
    while len(bounds) > 2:
        ratios = [bounds[i + 1] / bounds[i] for i in range(len(bounds) - 1)]
        worst = min(range(len(ratios)), key=lambda i: ratios[i])
        if ratios[worst] >= min_ratio:
            break
        # drop the interior boundary of the narrowest band (its lower one, unless it is the first band)
        del bounds[worst + 1 if worst == 0 else worst]
    return list(zip(bounds[:-1], bounds[1:]))


def _diag_point(lo: tuple[int, int], hi: tuple[int, int], tokens: float, patch: int) -> tuple[int, int]:
    """The point on the geometric diagonal lo->hi whose token count is ``tokens``, rounded to patch multiples."""
    n0, n1 = tokens_for(*lo, patch), tokens_for(*hi, patch)
    if n1 <= n0:
        return hi
    t = min(max(math.log(tokens / n0) / math.log(n1 / n0), 0.0), 1.0)

    def side(a, b):
        v = a * (b / a) ** t
        return int(min(max(round(v / patch) * patch, a), b))

    return side(lo[0], hi[0]), side(lo[1], hi[1])


def _split(profile: ResolutionProfile, patch: int, split: bool, layout: str) -> list[tuple]:
    lo, hi = profile.min, profile.max
    if lo == hi:
        return [(lo, lo, hi, (tokens_for(*lo, patch),) * 2)]
    n0, n1 = tokens_for(*lo, patch), tokens_for(*hi, patch)
    if not split or profile.input_name:
        return [(lo, profile.resolved_opt(patch), hi, (n0, n1))]
    bands = band_token_bounds(n0, n1)
    out = []
    for i, (a, b) in enumerate(bands):
        bmax = hi if i == len(bands) - 1 else _diag_point(lo, hi, b, patch)
        bmin = lo if (layout == "nested" or i == 0) else _diag_point(lo, hi, a, patch)
        opt = _diag_point(lo, hi, math.sqrt(a * b), patch)
        opt = tuple(min(max(o, m), x) for o, m, x in zip(opt, bmin, bmax))
        out.append((bmin, opt, bmax, (a, b)))
    if profile.opt is not None:  # the user's @opt wins for the tightest band containing it
        fits = [i for i, (mn, _, mx, _) in enumerate(out) if all(m <= o <= x for m, o, x in zip(mn, profile.opt, mx))]
        if fits:
            best = min(fits, key=lambda i: out[i][2][0] * out[i][2][1])
            mn, _, mx, tk = out[best]
            out[best] = (mn, profile.opt, mx, tk)
    return out


def _fit_hints(spec, pp: PlannedProfile, precision, fused, budget) -> str:
    def fits(b, h, w):
        return estimate_memory(spec, b, h, w, precision, fused).total_bytes <= budget

    hints = []
    h, w = pp.max
    p = spec.patch_size
    best = largest_fitting(lambda k: fits(pp.batch.max, k * p, max(p, round(w * k / (h // p or 1)) // p * p)),
                           max(1, pp.min[0] // p), h // p)
    if best is not None:
        side_h, side_w = best * p, max(p, round(w * best / (h // p or 1)) // p * p)
        lo = f"{pp.min[0]}" if pp.min[0] == pp.min[1] else f"{pp.min[0]}x{pp.min[1]}"
        hi = f"{side_h}" if side_h == side_w else f"{side_h}x{side_w}"
        hints.append(f"lower the max to ~{side_h}x{side_w}")
        hints.append(f"or narrow the band (e.g. --profile {lo}-{hi}, larger inputs in a separate engine)")
    bmax = largest_fitting(lambda b: fits(b, h, w), pp.batch.min, pp.batch.max)
    if bmax is not None and bmax < pp.batch.max:
        hints.append(f"or reduce --batch max to {bmax}")
    elif bmax is None and pp.batch.min > 1 and fits(1, h, w):
        hints.append("or use --batch 1")
    if not fused:
        if fits(pp.batch.max, h, w) is False and estimate_memory(spec, pp.batch.max, h, w, precision, True).total_bytes <= budget:
            hints.append("(it would fit if TensorRT fuses the attention: check with --assume-fused-mha after "
                         "verifying the fusion in the layer info)")
    if not hints:
        hints.append("this model does not fit even at the band's minimum: choose a smaller model or device")
    return "; ".join(hints)


def plan_engine(
    profiles: Sequence[ResolutionProfile] | ResolutionProfile,
    spec: ModelSpec,
    *,
    batch: BatchRange | None = None,
    precision: str = "fp16",
    device: str | DevicePreset | None = None,
    memory_budget: int | None = None,
    fused_mha: bool = False,
    input_name: str | None = None,
    split: bool = True,
    layout: str = "nested",
    size_rule=None,
    model_name: str = "",
) -> EnginePlan:
    """Plan one engine: each user profile becomes one or more TensorRT optimization profiles (bands).

    Args:
        profiles: parsed ``--profile`` values (one or more).
        spec: the model's numbers for the memory estimate (``ModelSpec.from_model(model)``).
        batch: the ``--batch`` range; a trtexec-form profile keeps its own batch.
        precision: fp32 / fp16 / int8 (activation and weight element sizes).
        device: a preset name (``orin-nano`` ...) or DevicePreset; its budget is 75% of its memory.
        memory_budget: bytes; overrides the device budget.
        fused_mha: assume TensorRT fuses attention (drops the N^2 term). Default False = conservative.
        input_name: the ONNX input name for trtexec shapes (default ``pixels``; a trtexec-form profile's name wins).
        split: False keeps each user profile as one TensorRT profile.
        layout: "nested" (default) or "disjoint" (see module docstring).
        size_rule: the model's SizeRule; profiles outside it raise InputSizeError.
    """
    if isinstance(profiles, ResolutionProfile):
        profiles = [profiles]
    if not profiles:
        raise UsageError("no --profile given; e.g. --profile 224-1792")
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if layout not in ("nested", "disjoint"):
        raise UsageError(f"layout must be 'nested' or 'disjoint', got {layout!r}")
    preset = get_device(device) if isinstance(device, str) else device
    budget = memory_budget if memory_budget is not None else (preset.budget_bytes if preset else None)
    patch = spec.patch_size
    names = {p.input_name for p in profiles if p.input_name}
    if len(names) > 1:
        raise UsageError(f"profiles name different inputs {sorted(names)}; one engine input is supported")
    name = input_name or (names.pop() if names else DEFAULT_INPUT_NAME)

    planned: list[PlannedProfile] = []
    warnings: list[str] = []
    notes: list[str] = []
    for prof in profiles:
        if size_rule is not None:
            prof.check_against(size_rule)
        for side in (*prof.min, *prof.max):
            if side < patch:
                raise UsageError(f"profile {prof} has a side below the patch size {patch} px; raise its lower end")
        pbatch = prof.batch if (prof.input_name or batch is None) else batch
        for mn, opt, mx, tk in _split(prof, patch, split, layout):
            mem = estimate_memory(spec, pbatch.max, mx[0], mx[1], precision, fused_mha)
            fits = None if budget is None else mem.total_bytes <= budget
            planned.append(PlannedProfile(len(planned), tuple(mn), tuple(opt), tuple(mx), pbatch, tuple(tk),
                                          str(prof), mem, fits))

    where = preset.label if preset else "the memory budget"
    for pp in planned:
        if pp.fits is False:
            warnings.append(
                f"profile {pp.index} ({pp.label()}, batch <= {pp.batch.max}) needs ~{format_bytes(pp.memory.total_bytes)} "
                f"at its max shape, over {format_bytes(budget)} for {where}; fix: "
                + _fit_hints(spec, pp, precision, fused_mha, budget))
    if layout == "disjoint" and any(p.min != p.max for p in planned) and len(planned) > 1:
        warnings.append("layout 'disjoint': inputs off the min->max diagonal (e.g. very wide images) may fall in no "
                        "profile; use the default nested layout to cover the whole range")
    if len(planned) > 1:
        notes.append("runtime: create contexts with ExecutionContextAllocationStrategy.ON_PROFILE_CHANGE so a context "
                     "reserves memory for its active profile only (STATIC reserves the max over all profiles)")
    if not fused_mha and not spec.backbone_is_flat:
        notes.append("memory assumes the attention is NOT fused (N^2 score buffers kept); if the built engine's layer "
                     "info shows fused MHA, re-plan with --assume-fused-mha")
    if preset and preset.dla_cores:
        notes.append(f"{preset.label} has {preset.dla_cores} DLA cores, but DLA needs static shapes "
                     "(min=opt=max): dynamic-resolution profiles run on the GPU")
    if budget is not None and planned and max(p.memory.total_bytes for p in planned) > budget // 2:
        notes.append("building needs more memory than running (tactic DRAM defaults to 75% of memory on Jetson): "
                     "close other apps, add swap, cap --memPoolSize=workspace and lower --builderOptimizationLevel")

    return EnginePlan(model=model_name or spec.name, family=spec.family, precision=precision, input_name=name,
                      patch_size=patch, profiles=planned, fused_mha=fused_mha, layout=layout,
                      device=preset.to_dict() if preset else None, budget_bytes=budget, warnings=warnings,
                      notes=notes)


def format_plan(plan: EnginePlan) -> list[str]:
    """Human-readable lines for the CLI."""
    lines = [f"engine plan: {plan.model or plan.family} ({plan.family}), {plan.precision}, input '{plan.input_name}', "
             f"{len(plan.profiles)} profile(s), layout {plan.layout}"]
    if plan.device or plan.budget_bytes:
        dev = plan.device["label"] if plan.device else "custom"
        lines.append(f"target: {dev}, budget {format_bytes(plan.budget_bytes)}")
    for p in plan.profiles:
        m = p.memory
        fit = "" if p.fits is None else ("  fits" if p.fits else "  DOES NOT FIT")
        lines.append(
            f"  profile {p.index}: min {p.min[0]}x{p.min[1]} opt {p.opt[0]}x{p.opt[1]} max {p.max[0]}x{p.max[1]} "
            f"batch {p.batch} tokens {p.tokens[0]}-{p.tokens[1]}  ~{format_bytes(m.total_bytes)} "
            f"(act {format_bytes(m.activation_bytes)}, weights {format_bytes(m.weights_bytes)}){fit}")
    for w in plan.warnings:
        lines.append(f"WARNING: {w}")
    for n in plan.notes:
        lines.append(f"note: {n}")
    return lines


def plan_profiles(model, profiles, batch: BatchRange | None = None, precision: str = "fp16", *,
                  device: str | None = None, memory_budget: str | int | None = None, **kwargs) -> EnginePlan:
    """``plan_engine`` for a model object (reads ModelSpec, SizeRule and name from it); ``memory_budget`` may be
    a string such as "6G". This is what the ``build`` pipeline and ``resvit-export plan`` call."""
    from .devices import parse_memory_size

    spec = ModelSpec.from_model(model)
    budget = parse_memory_size(memory_budget) if memory_budget is not None else None
    return plan_engine(list(profiles), spec, batch=batch, precision=precision, device=device, memory_budget=budget,
                       size_rule=getattr(model, "size_rule", None), model_name=getattr(model, "model_name", ""),
                       **kwargs)
