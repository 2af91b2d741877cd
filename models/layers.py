"""Building blocks shared by the model families (pre-LN transformer pieces, patch embedding)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PatchEmbed", "Mlp", "Attention", "Block", "sincos_1d", "resample_pos_embed", "grid_to_tokens",
           "tokens_to_grid"]


class PatchEmbed(nn.Module):
    """Non-overlapping patches by a stride-``patch`` convolution: [B, C, H, W] -> [B, dim, H//p, W//p].

    The convolution floors the grid, which is the project's rule for sides that are not a multiple of the patch.
    """

    def __init__(self, patch_size: int = 16, in_chans: int = 3, dim: int = 768):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, act: type[nn.Module] = nn.GELU):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention over [B, N, dim] with an optional boolean mask (True = may attend).

    ``head_dim`` may be set independently of ``dim`` (vit-pytorch's ``dim_head``), which RIViT needs
    (width 128 with 3 heads).
    """

    def __init__(self, dim: int, num_heads: int, head_dim: int | None = None, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim if head_dim is not None else dim // num_heads
        if head_dim is None and dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}; pass head_dim explicitly")
        inner = self.num_heads * self.head_dim
        self.qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias)
        self.proj = nn.Linear(inner, dim)

    def split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]  # each [B, heads, N, head_dim]

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        B, _, N, _ = x.shape
        return self.proj(x.transpose(1, 2).reshape(B, N, self.num_heads * self.head_dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.split_heads(x)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.merge_heads(out)


class Block(nn.Module):
    """Pre-LN transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, attn: nn.Module | None = None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = attn if attn is not None else Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), mask) if mask is not None else x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def sincos_1d(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Sine-cosine embedding of (possibly fractional) positions: [...] -> [..., dim] (dim even)."""
    if dim % 2:
        raise ValueError(f"sincos embedding needs an even dim, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float32, device=positions.device) / (dim // 2)
    omega = 1.0 / temperature**omega
    angles = positions.to(torch.float32)[..., None] * omega
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def resample_pos_embed(table: torch.Tensor, size, *, mode: str = "bicubic", antialias: bool = False) -> torch.Tensor:
    """Resize a grid position table [1, C, h0, w0] to ``size`` = (h, w): [1, C, h, w].

    The one resize every family with a learned grid table uses (DeiT: bicubic + antialias, timm's default;
    ViTAR's FPE at eval: bilinear), and what the checkpoint converters use to change a table's grid.
    ``size`` may hold symbolic sizes taken from a tensor's shape, so the export keeps H and W dynamic: never
    pass Python ints derived from an example input. No shortcut when the size is unchanged: comparing
    symbolic sizes would add a guard to the exported graph. Low-precision tables are resized in float32
    and cast back (timm's ``resample_abs_pos_embed`` does the same).
    """
    dtype = table.dtype
    if dtype != torch.float32:  # a dtype test, decided at trace time: adds no graph branch
        table = table.float()
    align = False if mode in ("linear", "bilinear", "bicubic", "trilinear") else None
    out = F.interpolate(table, size=size, mode=mode, align_corners=align, antialias=antialias)
    return out if dtype == torch.float32 else out.to(dtype)


def tokens_to_grid(pos: torch.Tensor, grid: tuple[int, int], num_prefix_tokens: int = 1
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """timm's token layout [1, prefix + h*w, C] -> (prefix [1, prefix, C], grid table [1, C, h, w])."""
    h, w = grid
    if pos.dim() != 3 or pos.shape[1] != num_prefix_tokens + h * w:
        raise ValueError(f"position table of shape {tuple(pos.shape)} is not [1, {num_prefix_tokens} + {h}*{w}, C]")
    prefix, body = pos[:, :num_prefix_tokens], pos[:, num_prefix_tokens:]
    return prefix, body.reshape(1, h, w, -1).permute(0, 3, 1, 2).contiguous()


def grid_to_tokens(table: torch.Tensor, prefix: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse of ``tokens_to_grid``: grid table [1, C, h, w] (+ prefix [1, p, C]) -> [1, p + h*w, C]."""
    body = table.flatten(2).transpose(1, 2)
    return body if prefix is None else torch.cat([prefix, body], dim=1)
