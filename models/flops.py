"""FLOP counting with torch's own FlopCounterMode (counts 2 FLOPs per multiply-accumulate)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops", "count_params"]


def count_flops(model: torch.nn.Module, height: int, width: int | None = None, batch: int = 1) -> int:
    """FLOPs of one eval forward at ``height``×``width`` (matmuls, convs and attention; elementwise ops are not counted)."""
    width = height if width is None else width
    x = torch.zeros(batch, 3, height, width)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
