"""A ViT defined outside resvit-export, built with `resvit-export build --model examples.my_vit:my_vit_tiny`.

What makes it buildable is the model contract (resvit_export/models/contract.py), nothing else: ``size_rule``,
``forward_features`` / ``forward_head``, ``deploy_spec()`` and the ONNX ``input_names`` / ``output_names``.
This one has no class token (mean pooling) and a learned 8x8 position table resampled to the input's patch
grid, so it runs at any size the size rule accepts, square or not.

    resvit-export build --model examples.my_vit:my_vit_tiny --profile 32-128 -o out/my_vit
    resvit-export build examples/my_vit.py:my_vit_tiny --set depth=4 --profile 32-128 -o out/my_vit4

    import resvit_export
    from examples.my_vit import MyViT
    resvit_export.build(MyViT(depth=2), profiles=["32-128"], out_dir="out/my_vit_api")
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from resvit_export.models import DeploySpec, SizeRule
from resvit_export.models.layers import resample_pos_embed


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C)
        x = x + self.proj(a)
        return x + self.mlp(self.norm2(x))


class MyViT(nn.Module):
    input_names = ("pixels",)
    output_names = ("logits",)

    def __init__(self, dim: int = 32, depth: int = 2, heads: int = 2, patch: int = 16, classes: int = 10,
                 min_side: int = 32, max_side: int = 1024):
        super().__init__()
        self.dim, self.depth, self.heads, self.patch = dim, depth, heads, patch
        self._rule = SizeRule(min_side, max_side, patch)
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)  # stride = patch: the floor rule for odd sides
        self.pos = nn.Parameter(torch.randn(1, dim, 8, 8) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    @property
    def size_rule(self) -> SizeRule:
        return self._rule

    def deploy_spec(self) -> DeploySpec:
        return DeploySpec(family="my_vit", dim=self.dim, depth=self.depth, num_heads=self.heads,
                          patch_size=self.patch, cls_tokens=0, name="my_vit")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        x = x + resample_pos_embed(self.pos, x.shape[-2:])  # symbolic size: H and W stay dynamic in ONNX
        x = x.flatten(2).transpose(1, 2)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = tokens.mean(dim=1)
        return pooled if pre_logits else self.head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def my_vit_tiny(**kwargs) -> MyViT:
    """The factory `--model examples.my_vit:my_vit_tiny` calls; `--set depth=4` arrives as depth=4."""
    return MyViT(**kwargs)


def missing_deploy_spec() -> nn.Module:
    """A model that lacks one contract piece (no deploy_spec): build refuses it with one line, exit 2."""
    model = MyViT()
    model.deploy_spec = None
    return model
