"""DeiT baseline (Touvron et al., 2021) with its positional embedding interpolated to the token grid.

The control in every comparison and what most users deploy today. The learned table covers the 224 px
grid (14×14); at other sizes it is resized with bicubic interpolation, antialiased like timm's
``resample_abs_pos_embed`` by default. TensorRT's parser rejects antialiased Resize: the graph rewrite
drops the flag where that is exact (upsampling only) and the lint flags it where it is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import ResolutionFlexibleModel, SizeRule
from .layers import Block, PatchEmbed
from .registry import register_model

__all__ = ["DeiTConfig", "DeiT"]


@dataclass(frozen=True)
class DeiTConfig:
    dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    patch_size: int = 16
    pos_grid: int = 14  # learned table side (224 px / 16)
    pos_antialias: bool = True
    num_classes: int = 1000
    min_side: int = 32
    max_side: int = 4096

    def __post_init__(self):
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} must be divisible by num_heads {self.num_heads}")


class DeiT(ResolutionFlexibleModel):
    family = "deit"

    def __init__(self, cfg: DeiTConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg.patch_size, 3, cfg.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.randn(1, cfg.dim, cfg.pos_grid, cfg.pos_grid) * 0.02)
        self.cls_pos = nn.Parameter(torch.randn(1, 1, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.head = nn.Linear(cfg.dim, cfg.num_classes)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    @property
    def size_rule(self) -> SizeRule:
        return SizeRule(self.cfg.min_side, self.cfg.max_side, self.cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.patch_embed(x)  # [B, D, gh, gw]
        B, D, gh, gw = x.shape
        # Sizes come from the tensor's shape, never Python ints, so the export keeps H and W dynamic.
        pos = F.interpolate(self.pos_embed, size=(gh, gw), mode="bicubic", align_corners=False,
                            antialias=self.cfg.pos_antialias)
        x = (x + pos).flatten(2).transpose(1, 2)  # NCHW -> NLC
        cls = (self.cls_token + self.cls_pos).expand(B, -1, -1)
        x = torch.cat([cls, x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, 0]))


register_model("deit_t", "deit", DeiT, DeiTConfig(dim=192, num_heads=3), "DeiT-Tiny/16")
register_model("deit_s", "deit", DeiT, DeiTConfig(dim=384, num_heads=6), "DeiT-Small/16")
register_model("deit_b", "deit", DeiT, DeiTConfig(dim=768, num_heads=12), "DeiT-Base/16")
register_model("deit_test", "deit", DeiT, DeiTConfig(dim=32, depth=2, num_heads=2, num_classes=10),
               "tiny DeiT for tests", test_variant=True)
