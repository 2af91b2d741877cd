"""Shared pieces of the mappers: refusing variants that do not map, reading sizes off the tensors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

import torch

from resvit_export.errors import CheckpointError

State = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Unmapped:
    """A variant recognisable from its keys that the target architecture cannot represent."""

    pattern: str  # regex searched in every key
    variant: str
    why: str


def refuse_unmapped(state: State, rules: tuple[Unmapped, ...], source: str, target: str) -> None:
    for rule in rules:
        hit = next((k for k in state if re.search(rule.pattern, k)), None)
        if hit is not None:
            raise CheckpointError(f"{source}: {rule.variant} (key {hit!r}) does not map onto {target}: {rule.why}")


def require(state: State, keys: tuple[str, ...], source: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(f"{source}: no tensor {missing[0]!r} ({len(missing)} expected keys missing); "
                              f"is it really this format? (first keys: {', '.join(list(state)[:4])})")


def block_count(state: State, prefix: str = "blocks.") -> int:
    ids = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    if not ids or ids != set(range(max(ids) + 1)):
        raise CheckpointError(f"transformer blocks {sorted(ids)[:5]}... are not numbered 0..N-1")
    return max(ids) + 1


def mlp_ratio(dim: int, hidden: int, source: str) -> float:
    """The config's mlp_ratio for this hidden width; the model builds int(dim * ratio) hidden units."""
    ratio = hidden / dim
    if int(dim * ratio) != hidden:
        raise CheckpointError(f"{source}: MLP width {hidden} is not reachable as int({dim} * mlp_ratio)")
    return ratio


def square_patch(weight: torch.Tensor, source: str) -> int:
    if weight.dim() != 4 or weight.shape[-1] != weight.shape[-2] or weight.shape[1] != 3:
        raise CheckpointError(f"{source}: patch embedding of shape {tuple(weight.shape)} is not a square-patch RGB conv")
    return int(weight.shape[-1])


def rename(state: State, mapping: Callable[[str], str]) -> dict[str, torch.Tensor]:
    return {mapping(k): v for k, v in state.items()}


def vit_config(state: State, dim: int, patch_weight: torch.Tensor, source: str) -> dict:
    """Config fields every ViT-shaped checkpoint states in its tensors: width, depth, patch, MLP ratio, classes."""
    return {
        "dim": dim,
        "depth": block_count(state),
        "patch_size": square_patch(patch_weight, source),
        "mlp_ratio": mlp_ratio(dim, int(state["blocks.0.mlp.fc1.weight"].shape[0]), source),
        "num_classes": int(state["head.weight"].shape[0]),
    }


def shared_refusals(target: str) -> tuple[Unmapped, ...]:
    """Variants no target family can represent (timm names); each mapper adds its own."""
    return (
        Unmapped(r"^reg_token$", "register tokens", f"{target} carries no extra prefix tokens"),
        Unmapped(r"\.ls[12]\.gamma$", "LayerScale (DeiT-III, CaiT-style)",
                 f"{target} blocks have no per-channel residual scale"),
        Unmapped(r"\.(q_norm|k_norm)\.", "QK-norm attention", f"{target} attention has no query/key normalisation"),
        Unmapped(r"^norm_pre\.", "pre-norm (CLIP-style)", f"{target} has no LayerNorm before the blocks"),
        Unmapped(r"^attn_pool\.", "attention-pooling (MAP) head", f"{target} has no attention pooling"),
    )
