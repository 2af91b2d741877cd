"""What every reference model shares: its input-size rule, input checking and the contract's defaults.

The size rule is kept apart from the architecture config (timm's PretrainedCfg idea): export, profile
planning and the parity matrix all read it from ``model.size_rule``. ``ResolutionFlexibleModel`` implements
the model contract (``models/contract.py``) from ``self.cfg`` (a ``ViTConfig``); a family overrides only what
differs (ViTAR's capped grid, RIViT's fixed grid and conv stem).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from resvit_export.errors import InputSizeError

from .contract import DeploySpec

__all__ = ["SizeRule", "ResolutionFlexibleModel"]


@dataclass(frozen=True)
class SizeRule:
    """Which input sizes a model accepts.

    Any H, W in [min_side, max_side] is accepted, square or not. Sides that are not a multiple of
    ``patch_size`` follow the *floor* rule: the patch grid is ``side // patch_size`` and the remaining
    right/bottom pixels are ignored (exactly what a stride-``patch_size`` convolution does).
    """

    min_side: int
    max_side: int = 4096
    patch_size: int = 16
    channels: int = 3

    def grid(self, h: int, w: int) -> tuple[int, int]:
        """Patch grid (rows, cols) for an H×W input under the floor rule."""
        return h // self.patch_size, w // self.patch_size

    def check(self, h: int, w: int) -> None:
        """Raise InputSizeError unless H×W is accepted."""
        for name, side in (("height", h), ("width", w)):
            if side < self.min_side:
                raise InputSizeError(
                    f"input {name} {side} px is below this model's minimum of {self.min_side} px; "
                    f"resize the image to at least {self.min_side}×{self.min_side}"
                )
            if side > self.max_side:
                raise InputSizeError(
                    f"input {name} {side} px is above this model's maximum of {self.max_side} px; "
                    f"resize the image or raise the model's max_side"
                )


class ResolutionFlexibleModel(nn.Module):
    """Base class: ``forward(x: [B, C, H, W]) -> logits [B, num_classes]`` at any accepted H, W.

    Subclasses set ``self.cfg`` (a ``ViTConfig``) and implement ``forward_features`` and ``forward_head``.
    """

    input_names: ClassVar[tuple[str, ...]] = ("pixels",)  # the export's ONNX input name (export.INPUT_NAME)
    output_names: ClassVar[tuple[str, ...]] = ("logits",)
    cls_tokens: ClassVar[int] = 0  # class tokens prepended to the patch tokens
    # Stamped on the instance by create_model from the registry, the family's single owner.
    family: str = ""
    model_name: str = ""

    @property
    def size_rule(self) -> SizeRule:
        return SizeRule(self.cfg.min_side, self.cfg.max_side, self.cfg.patch_size)

    def deploy_spec(self) -> DeploySpec:
        """Planning numbers and token rule: a plain patch grid plus the class tokens (families override)."""
        c = self.cfg
        return DeploySpec(family=self.family, dim=c.dim, depth=c.depth, num_heads=c.num_heads,
                          patch_size=c.patch_size, mlp_ratio=c.mlp_ratio, cls_tokens=self.cls_tokens,
                          name=self.model_name)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - every family overrides it
        raise NotImplementedError

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def check_input(self, x: torch.Tensor) -> None:
        """Validate rank, channels and size. Export-safe: with a Dim range inside the rule these
        comparisons are decided from the symbolic value range and add no guard."""
        rule = self.size_rule
        if x.dim() != 4:
            raise InputSizeError(f"expected a 4-D image batch [B, C, H, W], got shape {tuple(x.shape)}")
        if x.shape[1] != rule.channels:
            raise InputSizeError(f"expected {rule.channels} input channels, got {x.shape[1]} (shape {tuple(x.shape)})")
        if x.shape[-2] < rule.min_side or x.shape[-1] < rule.min_side:
            raise InputSizeError(
                f"input {x.shape[-2]}×{x.shape[-1]} is below this model's minimum side of {rule.min_side} px; "
                f"resize the image to at least {rule.min_side}×{rule.min_side}"
            )
        if x.shape[-2] > rule.max_side or x.shape[-1] > rule.max_side:
            raise InputSizeError(
                f"input {x.shape[-2]}×{x.shape[-1]} is above this model's maximum side of {rule.max_side} px"
            )
