"""timm NaFlexVit (factorized position embedding, average pooling) -> navit_*.

Renames: ``embeds.proj`` -> ``patch_embed.proj``, ``embeds.pos_embed_y/x`` [1, L, D] -> ``pos_y/x`` [L, D],
``fc_norm`` -> ``norm`` (navit_* norms after pooling, as timm does with ``global_pool='avg'``). A linear patch
embedding (``embed_proj_type='linear'``, patches flattened channels-last (ph, pw, C)) is reshaped into the
equivalent conv weight. timm resizes each 1-D table with ``F.interpolate(mode='linear')``; navit_* reads the
same values by gather + lerp, so logits agree to float rounding (<= 6e-6).
"""

from __future__ import annotations

import math

from resvit_export.errors import CheckpointError

from .rules import State, Unmapped, refuse_unmapped, require, shared_refusals, vit_config

SOURCE = "timm NaFlexViT checkpoint"
UNMAPPED = (
    Unmapped(r"^cls_token$", "class token", "navit_* has no class token (it pools the patch tokens)"),
    Unmapped(r"^norm\.", "final norm before pooling", "navit_* norms after pooling (global_pool='avg', fc_norm)"),
    Unmapped(r"^embeds\.pos_embed$", "learned 2-D position table", "navit_* uses factorized tables (pos_embed='factorized')"),
    Unmapped(r"^embeds\.(norm|input_norm)\.", "normalised patch embedding", "navit_* embeds patches with a plain projection"),
) + shared_refusals("navit_*")


def _patch_conv(weight, dim: int):
    """Conv weight [D, 3, P, P] from timm's conv or channels-last linear patch embedding."""
    if weight.dim() == 4:
        return weight
    p = math.isqrt(weight.shape[1] // 3)
    if weight.dim() != 2 or 3 * p * p != weight.shape[1]:
        raise CheckpointError(f"{SOURCE}: embeds.proj.weight of shape {tuple(weight.shape)} is not an RGB square-patch "
                              f"projection")
    return weight.reshape(dim, p, p, 3).permute(0, 3, 1, 2).contiguous()


def convert(state: State) -> tuple[dict, dict]:
    refuse_unmapped(state, UNMAPPED, SOURCE, "navit_*")
    require(state, ("embeds.proj.weight", "embeds.pos_embed_y", "embeds.pos_embed_x", "fc_norm.weight",
                    "head.weight", "blocks.0.mlp.fc1.weight"), SOURCE)
    pos_y, pos_x = state["embeds.pos_embed_y"][0], state["embeds.pos_embed_x"][0]
    if pos_y.shape != pos_x.shape:
        raise CheckpointError(f"{SOURCE}: factorized tables of lengths {pos_y.shape[0]} and {pos_x.shape[0]}; navit_* "
                              f"uses one length for both axes")
    dim = int(pos_y.shape[1])
    conv = _patch_conv(state["embeds.proj.weight"], dim)
    out = {}
    for key, value in state.items():
        if key.startswith("embeds."):
            continue
        out["norm." + key[len("fc_norm."):] if key.startswith("fc_norm.") else key] = value
    out.update({"patch_embed.proj.weight": conv, "pos_y": pos_y.contiguous(), "pos_x": pos_x.contiguous()})
    if "embeds.proj.bias" in state:
        out["patch_embed.proj.bias"] = state["embeds.proj.bias"]
    return out, {**vit_config(state, dim, conv, SOURCE), "pos_len": int(pos_y.shape[0])}
