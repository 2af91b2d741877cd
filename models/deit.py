"""DeiT baseline (Touvron et al., 2021) with its positional embedding interpolated to the token grid.

The control in every comparison and what most users deploy today. The learned table covers the 224 px
grid (14×14); at other sizes it is resized with bicubic interpolation, antialiased like timm's
``resample_abs_pos_embed`` by default. TensorRT's parser rejects antialiased Resize: the graph rewrite
drops the flag where that is exact (upsampling only) and the lint flags it where it is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from resvit_export.errors import ConfigError

from .base import ResolutionFlexibleModel
from .contract import ViTConfig
from .layers import Block, PatchEmbed, resample_pos_embed
from .registry import register_model

__all__ = ["DeiTConfig", "DeiT"]


@dataclass(frozen=True)
class DeiTConfig(ViTConfig):
    pos_grid: int = 14  # learned table side (224 px / 16)
    pos_antialias: bool = True

    def __post_init__(self):
        super().__post_init__()
        if self.pos_grid < 1:
            raise ConfigError(f"pos_grid must be a positive integer, got {self.pos_grid}")


class DeiT(ResolutionFlexibleModel):
    cls_tokens = 1

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

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> normed tokens [B, 1 + gh*gw, D], class token first."""
        self.check_input(x)
        x = self.patch_embed(x)  # [B, D, gh, gw]
        B, D, gh, gw = x.shape
        # Sizes come from the tensor's shape, never Python ints, so the export keeps H and W dynamic.
        pos = resample_pos_embed(self.pos_embed, (gh, gw), mode="bicubic", antialias=self.cfg.pos_antialias)
        x = (x + pos).flatten(2).transpose(1, 2)  # NCHW -> NLC
        cls = (self.cls_token + self.cls_pos).expand(B, -1, -1)
        x = torch.cat([cls, x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Class-token pooling, then the linear head."""
        pooled = tokens[:, 0]
        return pooled if pre_logits else self.head(pooled)


register_model("deit_t", "deit", DeiT, DeiTConfig(dim=192, num_heads=3), "DeiT-Tiny/16")
register_model("deit_s", "deit", DeiT, DeiTConfig(dim=384, num_heads=6), "DeiT-Small/16")
register_model("deit_b", "deit", DeiT, DeiTConfig(dim=768, num_heads=12), "DeiT-Base/16")
register_model("deit_test", "deit", DeiT, DeiTConfig(dim=32, depth=2, num_heads=2, num_classes=10),
               "tiny DeiT for tests", test_variant=True)
