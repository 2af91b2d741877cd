"""ResFormer (Tian et al., CVPR 2023, arXiv 2212.00776): a DeiT trained at several resolutions at once, with a
global-local positional embedding (GLPE) that is generated for whatever token grid the input produces.

* Global PE: a 2-D sine-cosine map built on the fly for the current gh×gw grid with *fractional* coordinates
  (official code, DETR style: cumulative 1..N divided by N, times 2π; temperature 10000; the first half of the
  channels encodes y, the second half x; sin/cos interleaved), then a learnable 3×3 depthwise convolution over the
  [D, gh, gw] map. The class token's PE is zero. Added once, after the patch embedding.
* Local PE: in *every* attention block a zero-initialised 3×3 depthwise convolution on V, reshaped per head to
  (B·heads, head_dim, gh, gw) with weights shared across heads; the attention output is softmax(QKᵀ/√d)V + conv(V),
  with zero added at the class token.
  Note: in the LAST block the patch tokens feed nothing (the head reads only the class token and the MLP is
  per-token), so that block's LPE conv never affects the output and always gets a zero gradient. Kept anyway, as in
  the paper ("every block") and the official code, so checkpoints keep the same layout.
* ``multires_step`` is the paper's training objective (CE at every resolution + scale-consistency smooth-L1).

Export: gh, gw come from the patch-embed output's shape (never ``int(sqrt(N))`` like the official code, which only
handles square maps), so one ONNX graph covers every H, W in the size rule, square or not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from resvit_export.errors import ConfigError

from .base import ResolutionFlexibleModel
from .contract import ViTConfig
from .layers import Attention, Block, PatchEmbed
from .registry import register_model

__all__ = ["ResFormerConfig", "ResFormer", "LocalPosAttention", "sincos_2d_fractional", "multires_step"]


@dataclass(frozen=True)
class ResFormerConfig(ViTConfig):
    temperature: float = 10000.0

    def __post_init__(self):
        super().__post_init__()
        if self.dim % 4:
            raise ConfigError(f"dim {self.dim} must be a multiple of 4 (half the channels per axis, sin/cos pairs)")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")


def sincos_2d_fractional(gh: int, gw: int, dim: int, temperature: float = 10000.0,
                         device: torch.device | None = None) -> torch.Tensor:
    """ResFormer's global sine-cosine map for a gh×gw grid: [1, dim, gh, gw].

    Row j (1-based) sits at 2π·j/gh (DETR's cumulative-sum normalisation, eps 1e-6 as in the official code), so the
    encoding is a function of the *fractional* position only: the last row/column is always at 2π. Channel k of
    each half uses frequency temperature^(2⌊k/2⌋/(dim/2)); even k get sin, odd k cos (interleaved). Channels
    [0, dim/2) encode y, [dim/2, dim) encode x. ``gh``/``gw`` may be symbolic sizes (export keeps them dynamic).
    """
    half = dim // 2
    ys = torch.arange(1, gh + 1, dtype=torch.float32, device=device)
    xs = torch.arange(1, gw + 1, dtype=torch.float32, device=device)
    # Normalise by the last element (a tensor op) rather than by gh: no SymInt arithmetic enters the graph.
    ys = ys / (ys[-1:] + 1e-6) * (2 * math.pi)
    xs = xs / (xs[-1:] + 1e-6) * (2 * math.pi)
    k = torch.arange(half, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / half)

    def encode(pos: torch.Tensor) -> torch.Tensor:  # [n] -> [n, half], sin/cos interleaved
        a = pos[:, None] / dim_t
        return torch.stack([a[:, 0::2].sin(), a[:, 1::2].cos()], dim=-1).flatten(1)

    ey, ex = encode(ys), encode(xs)  # [gh, half], [gw, half]
    pe_y = ey.t()[:, :, None].expand(half, ey.shape[0], ex.shape[0])
    pe_x = ex.t()[:, None, :].expand(half, ey.shape[0], ex.shape[0])
    return torch.cat([pe_y, pe_x], dim=0)[None]


class LocalPosAttention(Attention):
    """Attention + ResFormer's local PE: softmax(QKᵀ/√d)V + DWConv3×3(V) over the patch tokens (class token: +0)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__(dim, num_heads, qkv_bias=qkv_bias)
        # One depthwise conv over head_dim channels, shared by all heads (official `get_local_pos_embed`).
        self.lpe = nn.Conv2d(self.head_dim, self.head_dim, 3, padding=1, groups=self.head_dim)
        nn.init.zeros_(self.lpe.weight)
        nn.init.zeros_(self.lpe.bias)

    def local_pos_embed(self, v: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        B, heads, N, hd = v.shape
        patches = v[:, :, 1:].transpose(-1, -2).reshape(B * heads, hd, gh, gw)  # tokens are row-major
        lpe = self.lpe(patches).reshape(B, heads, hd, gh * gw).transpose(-1, -2)
        return torch.cat([torch.zeros_like(v[:, :, :1]), lpe], dim=2)

    def forward(self, x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        q, k, v = self.split_heads(x)
        out = F.scaled_dot_product_attention(q, k, v) + self.local_pos_embed(v, gh, gw)
        return self.merge_heads(out)


class ResFormerBlock(Block):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__(dim, num_heads, mlp_ratio, attn=LocalPosAttention(dim, num_heads))

    def forward(self, x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), gh, gw)
        return x + self.mlp(self.norm2(x))


class ResFormer(ResolutionFlexibleModel):
    cls_tokens = 1

    def __init__(self, cfg: ResFormerConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg.patch_size, 3, cfg.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        # Global PE conv: learnable depthwise 3×3 over the sincos map (PyTorch's default conv init).
        self.pos_conv = nn.Conv2d(cfg.dim, cfg.dim, 3, padding=1, groups=cfg.dim)
        self.blocks = nn.ModuleList(ResFormerBlock(cfg.dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.head = nn.Linear(cfg.dim, cfg.num_classes)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def global_pos_embed(self, gh: int, gw: int, device: torch.device | None = None) -> torch.Tensor:
        """[1, D, gh, gw]: depthwise conv over the fractional sincos map of the current grid."""
        return self.pos_conv(sincos_2d_fractional(gh, gw, self.cfg.dim, self.cfg.temperature, device))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> normed tokens [B, 1 + gh*gw, D], class token first."""
        self.check_input(x)
        x = self.patch_embed(x)  # [B, D, gh, gw]
        B, D, gh, gw = x.shape  # from the conv output: symbolic under export, non-square is fine
        x = (x + self.global_pos_embed(gh, gw, x.device)).flatten(2).transpose(1, 2)  # NCHW -> NLC
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)  # class token PE is zero
        for block in self.blocks:
            x = block(x, gh, gw)
        return self.norm(x)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Class-token pooling, then the linear head. ``pre_logits=True`` gives the final-normed class token
        [B, D], what the scale-consistency loss compares across resolutions."""
        pooled = tokens[:, 0]
        return pooled if pre_logits else self.head(pooled)


def multires_step(model: ResFormer, images: torch.Tensor, labels: torch.Tensor,
                  resolutions: tuple[int, ...] = (224, 160, 128), alpha: float = 1.0
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """ResFormer's multi-resolution training loss for one batch (call ``loss.backward()`` yourself).

    With resolutions sorted high to low, r = len(resolutions), x_i the batch resized to resolutions[i]
    (square; bilinear, antialias=True, align_corners=False; a batch already at that size is used as is),
    cls_i = ``model.forward_head(model.forward_features(x_i), pre_logits=True)`` (final-normed class token) and
    logits_i = ``model.head(cls_i)``:

        loss = (1/r) · [ Σ_{i=1..r} CE(logits_i, labels)
                         + α · Σ_{i=1..r-1} SmoothL1(cls_{i+1}, LN(cls_i.detach())) ]

    CE is mean cross-entropy (no label smoothing); SmoothL1 is ``F.smooth_l1_loss`` (beta 1, mean over batch and
    channels); LN is a LayerNorm without affine parameters (eps 1e-5) applied to the detached teacher token, i.e.
    each resolution is distilled from the next higher one and no gradient flows into the teacher.

    Returns:
        (loss, parts) where parts holds detached ``ce_<res>`` and ``scl_<res>`` (the term whose student is <res>)
        and the unweighted sums ``ce`` and ``scl``.
    """
    res = sorted({int(r) for r in resolutions}, reverse=True)
    if not res:
        raise ValueError("resolutions must name at least one size")
    cls_tokens, parts = [], {}
    ce_sum = scl_sum = images.new_zeros(())
    for r in res:
        x = images if tuple(images.shape[-2:]) == (r, r) else F.interpolate(
            images, size=(r, r), mode="bilinear", align_corners=False, antialias=True)
        cls = model.forward_head(model.forward_features(x), pre_logits=True)
        ce = F.cross_entropy(model.head(cls), labels)
        parts[f"ce_{r}"] = ce.detach()
        ce_sum = ce_sum + ce
        if cls_tokens:
            teacher = F.layer_norm(cls_tokens[-1].detach(), cls.shape[-1:], eps=1e-5)
            scl = F.smooth_l1_loss(cls, teacher)
            parts[f"scl_{r}"] = scl.detach()
            scl_sum = scl_sum + scl
        cls_tokens.append(cls)
    parts["ce"], parts["scl"] = ce_sum.detach(), scl_sum.detach()
    return (ce_sum + alpha * scl_sum) / len(res), parts


register_model("resformer_t", "resformer", ResFormer, ResFormerConfig(dim=192, num_heads=3), "ResFormer-T/16 (GLPE)")
register_model("resformer_s", "resformer", ResFormer, ResFormerConfig(dim=384, num_heads=6), "ResFormer-S/16 (GLPE)")
register_model("resformer_b", "resformer", ResFormer, ResFormerConfig(dim=768, num_heads=12), "ResFormer-B/16 (GLPE)")
register_model("resformer_test", "resformer", ResFormer,
               ResFormerConfig(dim=32, depth=2, num_heads=2, num_classes=10), "tiny ResFormer for tests",
               test_variant=True)
