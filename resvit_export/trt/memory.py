"""Activation/weight memory estimates for a TensorRT engine at a profile's max shape (pure arithmetic).

The estimate is an *upper-bound style* model of what one execution context reserves, good to a factor of ~1.5;
its job is to tell the user, before a 20-minute build on a Jetson, that a profile cannot fit.

Model (per context, at the profile's max batch B and max H x W, element size e bytes):

* TensorRT reuses activation memory between layers, so the peak is the largest *one block* working set, not
  depth x block (plus the stem, which runs before the blocks).
Token counts come from the model's own ``DeploySpec`` (``models/contract.py``): stem grid (H/p)(W/p) and backbone
tokens ``spec.backbone_tokens(H, W)``; no family name is consulted here.

* Token-global families (deit, resformer, navit): N = (H/p)(W/p) + cls tokens go through every block.
  Attention phase = x + qkv + out (~5 B*N*D) + **scores + softmax probabilities 2*B*h*N^2** when the attention is
  NOT fused. The N^2 term dominates above ~512 px: at 1792 px, N = 12,545 and one head's FP16 score matrix is 315 MB.
  MLP phase = x + hidden + out = (2 + mlp_ratio) * B*N*D.
* **Fused MHA**: by default we assume TensorRT does *not* fuse the attention (``fused_mha=False``). TensorRT 10.x
  fuses MatMul->Softmax->MatMul when Q is pre-scaled, but the fusion is not guaranteed for every head size, shape
  range and version (10.3 on JetPack 6), so the safe planning number keeps the N^2 buffers. With
  ``fused_mha=True`` the scores are never materialized and the attention term becomes linear (B*h*N*head_dim).
* ViTAR (``grid_cap`` 14): the Adaptive Token Merger shrinks the grid to min(side, 14) per axis before the
  backbone, so the backbone sees N <= 196 tokens at any resolution -> **flat**. Only the stem (patch embedding + ATM's windowed merging, which
  is local, i.e. linear in pixels) grows, as ~4 B*N_grid*D.
* RIViT (``fixed_grid`` 16): the backbone runs on a fixed 256-token set (16x16 after pooling to 64x64 and patch
  4) -> flat; the stem is two 3x3 convs at FULL resolution (``stem_channels`` wide), ~2 B*C_stem*H*W, linear in
  pixels. Its SizeRule has patch 1 (any size gives the same grid), so its DeploySpec bands on a nominal 16 px patch.
* Weights: params ~= depth*(4 + 2*mlp_ratio)*D^2 at the weight precision (fp32 4 B, fp16 2 B, int8 1 B).
* Runtime overhead: CUDA context + TensorRT runtime, a fixed 600 MiB (measured orders of magnitude on Orin; not
  verified here - no GPU).
* int8 activations are counted at 2 bytes: Q/DQ graphs keep LayerNorm/Softmax/residuals in FP16/FP32.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from resvit_export.errors import UsageError
from resvit_export.models.contract import DeploySpec

__all__ = ["ModelSpec", "MemoryEstimate", "estimate_memory", "ACT_BYTES", "WEIGHT_BYTES", "RUNTIME_OVERHEAD_BYTES"]

ACT_BYTES = {"fp32": 4, "fp16": 2, "int8": 2}
WEIGHT_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}
RUNTIME_OVERHEAD_BYTES = 600 << 20

# The planner's model description is the model contract's DeploySpec (widths, depth, heads, token rule):
# the token counts come from the model itself, never from a table keyed by family name.
ModelSpec = DeploySpec


def weight_params(spec: DeploySpec) -> int:
    """Approximate parameter count: depth x (qkv + proj + MLP) + the patch stem."""
    inner = spec.num_heads * spec.hd
    per_block = 4 * spec.dim * inner + 2 * spec.mlp_ratio * spec.dim * spec.dim
    stem = 3 * spec.patch_size * spec.patch_size * spec.dim
    return int(spec.depth * per_block + stem)


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
    gh, gw = spec.stem_grid(height, width)
    grid = gh * gw
    n = spec.backbone_tokens(height, width)
    B, D, h, hd, r = batch, spec.dim, spec.num_heads, spec.hd, spec.mlp_ratio
    inner = h * hd

    input_bytes = B * 3 * height * width * 4  # the binding is FP32 pixels
    if spec.stem_channels:  # conv stem at full resolution (rivit): two activations of C_stem x H x W alive
        stem = 2 * B * spec.stem_channels * height * width * e
    else:
        stem_factor = 4 if spec.grid_cap is not None else 2  # merging stems: pre-merge tokens + cell queries + attn
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
        weights_bytes=int(weight_params(spec) * WEIGHT_BYTES[precision]), overhead_bytes=RUNTIME_OVERHEAD_BYTES,
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
