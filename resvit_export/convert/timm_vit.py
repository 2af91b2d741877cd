"""timm VisionTransformer (DeiT/ViT) -> deit_*.

timm keeps one position table [1, 1 + g*g, D] whose first row is the class token's; deit_* keeps the grid as
[1, D, g, g] (what its bicubic resize reads) and the class position as ``cls_pos`` [1, 1, D]. Every other key
has the same name and shape. With the same weights the logits are identical (0.0 difference, tested at 224,
448, 320x640 and 97x301 against timm's own ``deit_small_patch16_224``).
"""

from __future__ import annotations

import math

from resvit_export.errors import CheckpointError
from resvit_export.models.layers import tokens_to_grid

from .rules import State, Unmapped, refuse_unmapped, require, shared_refusals, vit_config

SOURCE = "timm ViT checkpoint"
UNMAPPED = (
    Unmapped(r"^dist_token$|^head_dist\.", "distilled DeiT",
             "its distillation token and second head have no counterpart in deit_* (use the non-distilled DeiT)"),
    Unmapped(r"^fc_norm\.", "global-average-pooled ViT", "deit_* classifies from the class token"),
    Unmapped(r"\.mlp\.fc1_g\.|\.mlp\.w12\.", "gated MLP (SwiGLU)", "deit_* uses a plain GELU MLP"),
) + shared_refusals("deit_*")


def convert(state: State) -> tuple[dict, dict]:
    refuse_unmapped(state, UNMAPPED, SOURCE, "deit_*")
    require(state, ("cls_token", "pos_embed", "patch_embed.proj.weight", "norm.weight", "head.weight",
                    "blocks.0.attn.qkv.bias", "blocks.0.mlp.fc1.weight"), SOURCE)
    dim = int(state["cls_token"].shape[-1])
    n_pos = int(state["pos_embed"].shape[1])
    grid = math.isqrt(n_pos - 1)
    if grid < 1 or grid * grid != n_pos - 1:
        raise CheckpointError(f"{SOURCE}: pos_embed has {n_pos} rows, not 1 + a square grid; a table without a class-"
                              f"token position (no_embed_class, as in DeiT-III) does not map onto deit_*")
    cls_pos, table = tokens_to_grid(state["pos_embed"], (grid, grid), num_prefix_tokens=1)
    out = {k: v for k, v in state.items() if k != "pos_embed"}
    out["pos_embed"] = table
    out["cls_pos"] = cls_pos.contiguous()
    return out, {**vit_config(state, dim, state["patch_embed.proj.weight"], SOURCE), "pos_grid": grid}

