"""RIViT, "Resolution Invariant Vision Transformers" (Cui, Woo, Zheng; MIT 6.7960 FA24 course project).

No model code was published (blog + images only: github.com/zhengsophia/67960-RIViT), so this follows the blog's
description and fills the gaps with the choices listed below.

Pipeline: two 3×3 convs (padding 1, ReLU after each) at full resolution -> average pooling to a FIXED 64×64 map ->
patchify with patch 4 (a stride-4 conv = patchify + linear) -> 16×16 = 256 tokens of width 128 for ANY input size
-> 6 pre-LN transformer layers, 3 heads -> mean pool -> LayerNorm -> linear head (10 classes, Imagenette).

Choices where the project is silent:
* Stem width 16 channels for both convs (the blog gives none; 16 keeps the full-resolution convs cheap at 4096 px).
* 3 heads do not divide width 128, so heads have their own size (vit-pytorch's ``dim_head``): Attention(dim=128,
  num_heads=3, head_dim=64), i.e. q/k/v project 128 -> 3·64 = 192 and the output projects 192 -> 128.
* MLP ratio 4 (512 hidden), GELU.
* Positional encoding ``pos="relative"`` (default, the project's best, 80.56%): a learned per-head bias table over
  the (2·16−1)² relative offsets of the fixed 16×16 token grid, added to the attention logits (Swin style). The blog
  cites Shaw/Huang-style relative attention (S_rel = Q·Rᵀ); a per-head scalar bias is the common, export-trivial
  form of "relative position" and what this project ships. ``pos="sincos"``: 1-D sinusoidal encoding of the token
  index 0..255 (``layers.sincos_1d``: sin half then cos half), added after the embedding.
* Mean pooling over the 256 tokens (no class token): with a relative bias over the token grid a class token would
  need its own bias row/column, and vit-pytorch's ``pool="mean"`` is the simpler of its two options.
* Weights start from PyTorch's default init; the relative table from N(0, 0.02).

Export: ``adaptive_avg_pool2d`` to a fixed grid exports with a kernel baked for the example size (wrong elsewhere), so
the pooling is written as y = A_H · X · A_Wᵀ with averaging matrices built from ``arange`` and PyTorch's adaptive bins
[floor(i·H/64), ceil((i+1)·H/64)) in integer tensor arithmetic. It equals ``F.adaptive_avg_pool2d`` at every size,
including sides below 64 (bins then overlap exactly like PyTorch's). Everything after the pool is fixed-shape.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from resvit_export.errors import ConfigError

from .base import ResolutionFlexibleModel, SizeRule
from .contract import DeploySpec, ViTConfig
from .layers import Attention, Block, sincos_1d
from .registry import register_model

__all__ = ["RIViTConfig", "RIViT", "BiasAttention", "FixedGridSizeRule", "adaptive_pool_matrix",
           "adaptive_avg_pool2d_exportable"]


@dataclass(frozen=True)
class RIViTConfig(ViTConfig):
    dim: int = 128
    depth: int = 6
    num_heads: int = 3
    patch_size: int = 4  # on the pooled 64×64 map, not on the input pixels
    num_classes: int = 10
    stem_channels: int = 16
    pool_size: int = 64
    head_dim: int = 64
    pos: str = "relative"  # "relative" | "sincos"

    def __post_init__(self):
        super().__post_init__()
        if self.pos not in ("relative", "sincos"):
            raise ConfigError(f"pos must be 'relative' or 'sincos', got {self.pos!r}")
        for name in ("stem_channels", "pool_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.pool_size % self.patch_size:
            raise ConfigError(f"pool_size {self.pool_size} must be a multiple of patch_size {self.patch_size}")
        if self.pos == "sincos" and self.dim % 2:
            raise ConfigError(f"sincos positions need an even dim, got {self.dim}")

    def check_heads(self) -> None:
        """Heads have their own width (3 heads of 64 over a 128-d stream), so they need not divide dim."""
        if self.head_dim < 1:
            raise ConfigError(f"head_dim must be a positive integer, got {self.head_dim}")

    @property
    def input_patch(self) -> int:
        return 1  # the input is pooled, not patchified: no pixel is dropped at any size


@dataclass(frozen=True)
class FixedGridSizeRule(SizeRule):
    """RIViT's size rule: every accepted H×W gives the same token grid (no pixel is dropped, hence patch_size 1)."""

    grid_side: int = 16

    def grid(self, h: int, w: int) -> tuple[int, int]:
        return self.grid_side, self.grid_side


def adaptive_pool_matrix(size, out: int, device: torch.device | None = None) -> torch.Tensor:
    """[out, size] averaging matrix reproducing ``adaptive_avg_pool`` along one axis.

    Row i averages input indices [floor(i·size/out), ceil((i+1)·size/out)), PyTorch's bins. ``size`` may be a
    symbolic size: the bounds are computed with floor division on ``arange`` tensors, so the export keeps it dynamic.
    """
    i = torch.arange(out, device=device)
    start = torch.div(i * size, out, rounding_mode="floor")
    end = torch.div((i + 1) * size + (out - 1), out, rounding_mode="floor")  # ceil for non-negative ints
    pos = torch.arange(size, device=device)
    inside = (pos[None, :] >= start[:, None]) & (pos[None, :] < end[:, None])
    return inside.to(torch.float32) / (end - start).to(torch.float32)[:, None]


def adaptive_avg_pool2d_exportable(x: torch.Tensor, out: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, out)`` as two matmuls, valid for any H, W under dynamic-shape export."""
    a_h = adaptive_pool_matrix(x.shape[-2], out, x.device).to(x.dtype)
    a_w = adaptive_pool_matrix(x.shape[-1], out, x.device).to(x.dtype)
    return a_h @ x @ a_w.t()  # [out, H] · [B, C, H, W] · [W, out] -> [B, C, out, out]


class BiasAttention(Attention):
    """Attention with an optional additive logit bias, written out as matmul/softmax.

    ``layers.Attention`` hands a mask to ``F.scaled_dot_product_attention``; with a mask the dynamo ONNX export
    fails in torch 2.13 (the fused CPU kernel's output strides differ from its decomposition, so ``merge_heads``'s
    reshape becomes an invalid view). The explicit form is what the exporter emits anyway.
    """

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.split_heads(x)
        logits = (q * self.head_dim**-0.5) @ k.transpose(-2, -1)
        if bias is not None:
            logits = logits + bias
        return self.merge_heads(logits.softmax(dim=-1) @ v)


class RIViT(ResolutionFlexibleModel):

    def __init__(self, cfg: RIViTConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.stem_channels
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU())
        self.patch_embed = nn.Conv2d(c, cfg.dim, cfg.patch_size, stride=cfg.patch_size)
        g = cfg.pool_size // cfg.patch_size
        self.grid_side = g
        self.blocks = nn.ModuleList(
            Block(cfg.dim, cfg.num_heads, cfg.mlp_ratio, attn=BiasAttention(cfg.dim, cfg.num_heads, cfg.head_dim))
            for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.head = nn.Linear(cfg.dim, cfg.num_classes)
        if cfg.pos == "relative":
            self.rel_bias = nn.Parameter(torch.randn((2 * g - 1) ** 2, cfg.num_heads) * 0.02)
            ys, xs = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
            coords = torch.stack([ys.flatten(), xs.flatten()])  # [2, g²], row-major like the tokens
            rel = coords[:, :, None] - coords[:, None, :] + (g - 1)  # [2, g², g²] in [0, 2g-2]
            self.register_buffer("rel_index", rel[0] * (2 * g - 1) + rel[1], persistent=False)
        else:
            self.register_buffer("pos_embed", sincos_1d(torch.arange(g * g), cfg.dim)[None], persistent=False)

    @property
    def size_rule(self) -> SizeRule:
        return FixedGridSizeRule(self.cfg.min_side, self.cfg.max_side, patch_size=1, grid_side=self.grid_side)

    def deploy_spec(self) -> DeploySpec:
        """Fixed 16×16 backbone grid, no class token, full-resolution conv stem. Profiles are banded on a
        nominal 16 px patch: the stem's cost follows pixels, and 16 px keeps the bands at the usual sides."""
        return dataclasses.replace(super().deploy_spec(), patch_size=16, head_dim=self.cfg.head_dim,
                                   fixed_grid=self.grid_side, stem_channels=self.cfg.stem_channels)

    def relative_bias(self) -> torch.Tensor:
        """Additive attention bias [1, heads, 256, 256] from the learned relative table."""
        return self.rel_bias[self.rel_index].permute(2, 0, 1)[None]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> transformer output tokens [B, 256, dim] (no class token; the norm follows pooling)."""
        self.check_input(x)
        x = adaptive_avg_pool2d_exportable(self.stem(x), self.cfg.pool_size)  # [B, C, 64, 64] at any H, W
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # NCHW -> NLC, [B, 256, dim]
        if self.cfg.pos == "relative":
            bias = self.relative_bias()
            for block in self.blocks:
                x = block(x, bias)
        else:
            x = x + self.pos_embed
            for block in self.blocks:
                x = block(x)
        return x

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Mean pooling, LayerNorm, linear head."""
        pooled = self.norm(tokens.mean(dim=1))
        return pooled if pre_logits else self.head(pooled)


register_model("rivit", "rivit", RIViT, RIViTConfig(),
               "RIViT (conv stem + 64×64 pool, 256 tokens, 128-d, 6 layers, 3 heads, relative PE; Imagenette)")
register_model("rivit_test", "rivit", RIViT,
               RIViTConfig(stem_channels=4, dim=32, depth=2, num_heads=2, head_dim=16),
               "tiny RIViT for tests", test_variant=True)
