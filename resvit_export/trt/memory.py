"""Activation/weight memory estimates for a TensorRT engine at a profile's max shape (pure arithmetic).

The estimate is an *upper-bound style* model of what one execution context reserves, good to a factor of ~1.5;
its job is to tell the user, before a 20-minute build on a Jetson, that a profile cannot fit.

Model (per context, at the profile's max batch B and max H x W, element size e bytes):

* TensorRT reuses activation memory between layers, so the peak is the largest *one block* working set, not
  depth x block (plus the stem, which runs before the blocks).
* Token-global families (deit, resformer, navit): N = (H/p)(W/p) + cls tokens go through every block.
  Attention phase = x + qkv + out (~5 B*N*D) + **scores + softmax probabilities 2*B*h*N^2** when the attention is
  NOT fused. The N^2 term dominates above ~512 px: at 1792 px, N = 12,545 and one head's FP16 score matrix is 315 MB.
  MLP phase = x + hidden + out = (2 + mlp_ratio) * B*N*D.
* **Fused MHA**: by default we assume TensorRT does *not* fuse the attention (``fused_mha=False``). TensorRT 10.x
  fuses MatMul->Softmax->MatMul when Q is pre-scaled, but the fusion is not guaranteed for every head size, shape
  range and version (10.3 on JetPack 6), so the safe planning number keeps the N^2 buffers. With
  ``fused_mha=True`` the scores are never materialized and the attention term becomes linear (B*h*N*head_dim).
* ViTAR: the Adaptive Token Merger shrinks the grid to <= 14x14 before the backbone, so the backbone sees
  N <= 197 tokens at any resolution -> **flat**. Only the stem (patch embedding + ATM's windowed merging, which
  is local, i.e. linear in pixels) grows, as ~4 B*N_grid*D.
* RIViT: the backbone runs on a fixed 256-token set (16x16 after pooling to 64x64 and patch 4) -> flat; the
  stem is two 3x3 convs at FULL resolution (``stem_channels`` wide), ~2 B*C_stem*H*W, linear in pixels. Its
  SizeRule has patch 1 (any size gives the same grid), so banding uses a nominal 16 px patch (``band_patch``).
* Weights: params ~= depth*(4 + 2*mlp_ratio)*D^2 at the weight precision (fp32 4 B, fp16 2 B, int8 1 B).
* Runtime overhead: CUDA context + TensorRT runtime, a fixed 600 MiB (measured orders of magnitude on Orin; not
  verified here - no GPU).
* int8 activations are counted at 2 bytes: Q/DQ graphs keep LayerNorm/Softmax/residuals in FP16/FP32.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from resvit_export.errors import UsageError

__all__ = ["ModelSpec", "MemoryEstimate", "estimate_memory", "ACT_BYTES", "WEIGHT_BYTES", "RUNTIME_OVERHEAD_BYTES",
           "FAMILY_BACKBONE_TOKENS"]

ACT_BYTES = {"fp32": 4, "fp16": 2, "int8": 2}
WEIGHT_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}
RUNTIME_OVERHEAD_BYTES = 600 << 20
# Families whose backbone token count does not follow the input: the cap on tokens entering the backbone.
FAMILY_BACKBONE_TOKENS = {"vitar": 14 * 14, "rivit": 256}
TOKEN_GLOBAL_FAMILIES = ("deit", "resformer", "navit")


@dataclass(frozen=True)
class ModelSpec:
    """The few numbers the estimate needs. Build from a model with ``ModelSpec.from_model``."""

    family: str
    dim: int
    depth: int
    num_heads: int
    patch_size: int = 16
    mlp_ratio: float = 4.0
    head_dim: int | None = None
    cls_tokens: int = 1
    backbone_tokens: int | None = None  # fixed/capped backbone token count (vitar 196, rivit 256)
    stem_channels: int | None = None  # full-resolution conv stem width (rivit); None = patch-embedding stem
    name: str = ""

    def __post_init__(self):
        for f in ("dim", "depth", "num_heads", "patch_size"):
            if getattr(self, f) <= 0:
                raise UsageError(f"model spec {f} must be positive, got {getattr(self, f)}")

    @property
    def hd(self) -> int:
        return self.head_dim or self.dim // self.num_heads

    @property
    def backbone_is_flat(self) -> bool:
        return self.effective_backbone_cap is not None

    @property
    def effective_backbone_cap(self) -> int | None:
        if self.backbone_tokens is not None:
            return self.backbone_tokens
        return FAMILY_BACKBONE_TOKENS.get(self.family)

    @classmethod
    def from_model(cls, model) -> "ModelSpec":
        """Read family, cfg (dim/depth/num_heads/mlp_ratio/head_dim) and size_rule.patch_size from a model."""
        cfg = getattr(model, "cfg", None)
        family = getattr(type(model), "family", "") or getattr(model, "family", "")
        if cfg is None or not family:
            raise UsageError(f"cannot read family/cfg from {type(model).__name__}; pass a ModelSpec")

        def g(*names, default=None):
            for n in names:
                v = getattr(cfg, n, None)
                if v is not None:
                    return v
            return default

        patch = getattr(getattr(model, "size_rule", None), "patch_size", None) or g("patch_size", default=16)
        cap = g("backbone_tokens", "num_tokens")
        cls_tokens = 1
        stem_channels = None
        if cap is None and family == "vitar":
            side = g("grid", "target_grid", "atm_grid", default=14)  # ViTARConfig.grid: ATM output side
            cap = side * side
        if family == "rivit":  # conv stem at full res -> pool to pool_size -> patch -> fixed grid, mean pool
            side = g("pool_size", default=64) // g("patch_size", default=4)
            cap = cap or side * side
            cls_tokens = 0
            stem_channels = g("stem_channels", default=16)
        if patch < 8:  # a fixed-grid size rule (patch 1): band on a nominal 16 px patch
            patch = 16
        return cls(family=family, dim=int(g("dim", "embed_dim")), depth=int(g("depth")),
                   num_heads=int(g("num_heads", "heads")), patch_size=int(patch),
                   mlp_ratio=float(g("mlp_ratio", default=4.0)), head_dim=g("head_dim", "dim_head"),
                   cls_tokens=cls_tokens, backbone_tokens=cap, stem_channels=stem_channels,
                   name=getattr(model, "model_name", ""))

    def weight_params(self) -> int:
        inner = self.num_heads * self.hd
        per_block = 4 * self.dim * inner + 2 * self.mlp_ratio * self.dim * self.dim
        stem = 3 * self.patch_size * self.patch_size * self.dim
        return int(self.depth * per_block + stem)


@dataclass(frozen=True)
class MemoryEstimate:
    batch: int
    height: int
    width: int
    precision: str
    fused_mha: bool
    grid_tokens: int
    backbone_tokens: int
    input_bytes: int
    stem_bytes: int
    backbone_bytes: int  # one block's peak working set
    attention_scores_bytes: int  # the N^2 part of backbone_bytes (0 when fused)
    weights_bytes: int
    overhead_bytes: int

    @property
    def activation_bytes(self) -> int:
        return self.input_bytes + max(self.stem_bytes, self.backbone_bytes)

    @property
    def total_bytes(self) -> int:
        return self.activation_bytes + self.weights_bytes + self.overhead_bytes

    def to_dict(self) -> dict:
        d = asdict(self)
        d["activation_bytes"] = self.activation_bytes
        d["total_bytes"] = self.total_bytes
        return d


def estimate_memory(spec: ModelSpec, batch: int, height: int, width: int, precision: str = "fp16",
                    fused_mha: bool = False) -> MemoryEstimate:
    """Estimate one execution context's memory at input [batch, 3, height, width] (see module docstring)."""
    if precision not in ACT_BYTES:
        raise UsageError(f"unknown precision {precision!r}; choose fp32, fp16 or int8")
    if min(batch, height, width) <= 0:
        raise UsageError(f"shape must be positive, got batch={batch} {height}x{width}")
    e = ACT_BYTES[precision]
    p = spec.patch_size
    grid = max(1, height // p) * max(1, width // p)
    cap = spec.effective_backbone_cap
    n = (min(grid, cap) if cap is not None else grid) + spec.cls_tokens
    B, D, h, hd, r = batch, spec.dim, spec.num_heads, spec.hd, spec.mlp_ratio
    inner = h * hd

    input_bytes = B * 3 * height * width * 4  # the binding is FP32 pixels
    if spec.stem_channels:  # conv stem at full resolution (rivit): two activations of C_stem x H x W alive
        stem = 2 * B * spec.stem_channels * height * width * e
    else:
        stem_factor = 4 if cap is not None else 2  # merging stems: pre-merge tokens + pooled queries + window attn
        stem = stem_factor * B * grid * D * e + grid * D * e  # + the resized positional table (batch independent)

    scores = 0 if fused_mha else 2 * B * h * n * n * e
    attn = (2 * B * n * D + 3 * B * n * inner + B * n * inner) * e + scores
    if fused_mha:
        attn += B * h * n * hd * e  # fused kernel's output tile
    mlp = ((2 + r) * B * n * D) * e
    backbone = int(max(attn, mlp))
    return MemoryEstimate(
        batch=B, height=height, width=width, precision=precision, fused_mha=fused_mha,
        grid_tokens=grid, backbone_tokens=n, input_bytes=int(input_bytes), stem_bytes=int(stem),
        backbone_bytes=backbone, attention_scores_bytes=int(scores),
        weights_bytes=int(spec.weight_params() * WEIGHT_BYTES[precision]), overhead_bytes=RUNTIME_OVERHEAD_BYTES,
    )


def largest_fitting(fn, lo: int, hi: int) -> int | None:
    """Largest integer x in [lo, hi] with fn(x) True, assuming fn is monotone (True then False); None if none."""
    if lo > hi or not fn(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fn(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def tokens_for(h: int, w: int, patch: int) -> int:
    return max(1, h // patch) * max(1, w // patch)


def side_for_tokens(tokens: float, patch: int) -> int:
    return int(round(math.sqrt(tokens))) * patch
