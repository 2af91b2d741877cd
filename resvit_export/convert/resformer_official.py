"""Official ResFormer checkpoint (github.com/ruitian12/resformer, image_classification/models.py) -> resformer_*.

Key layout read from that file (commit 33e2c09): the global PE's depthwise conv is ``pos_embed.embed_layer``
(``GlobalPosEmbed``), each block's local PE conv is ``blocks.N.attn.get_v``; every other key (``cls_token``,
``patch_embed.proj``, ``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``, ``head``) has
our name and shape. So 2 + 2·depth keys are renamed: 26 at depth 12. The official code adds a zero PE for the
class token and computes the same sin-cos map, so outputs agree to float rounding (<= 4e-6 measured on
ResFormer-S); it only accepts square inputs (``int(sqrt(N - 1))``), resformer_* any H x W.
"""

from __future__ import annotations

import re

from .rules import State, Unmapped, refuse_unmapped, rename, require, vit_config

SOURCE = "official ResFormer checkpoint"
UNMAPPED = (
    Unmapped(r"^pre_logits\.", "representation layer (representation_size)", "resformer_* has no pre-logits layer"),
    Unmapped(r"^head_res\.|^dist_token$", "extra head or token", "resformer_* has one class token and one head"),
)


def _our_name(key: str) -> str:
    key = re.sub(r"^pos_embed\.embed_layer\.", "pos_conv.", key)
    return re.sub(r"^(blocks\.\d+\.attn\.)get_v\.", r"\1lpe.", key)


def convert(state: State) -> tuple[dict, dict]:
    refuse_unmapped(state, UNMAPPED, SOURCE, "resformer_*")
    require(state, ("cls_token", "patch_embed.proj.weight", "pos_embed.embed_layer.weight", "blocks.0.attn.get_v.weight",
                    "norm.weight", "head.weight", "blocks.0.mlp.fc1.weight"), SOURCE)
    dim = int(state["cls_token"].shape[-1])
    config = vit_config(state, dim, state["patch_embed.proj.weight"], SOURCE)
    # get_v has head_dim channels: dim / heads. The heads are therefore known from the checkpoint itself.
    head_dim = int(state["blocks.0.attn.get_v.weight"].shape[0])
    if head_dim < 1 or dim % head_dim:
        from resvit_export.errors import CheckpointError

        raise CheckpointError(f"{SOURCE}: get_v has {head_dim} channels, which does not divide width {dim}")
    config["num_heads"] = dim // head_dim
    return rename(state, _our_name), config


def renamed_keys(state: State) -> list[tuple[str, str]]:
    """(official, ours) for every key whose name changes."""
    return [(k, _our_name(k)) for k in state if _our_name(k) != k]
