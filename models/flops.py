"""FLOP counting with torch's FlopCounterMode (2 FLOPs per multiply-accumulate), attention included.

Two things make the plain FlopCounterMode wrong or slow here:

* On CPU, ``F.scaled_dot_product_attention`` runs ``aten._scaled_dot_product_flash_attention_for_cpu``, for which
  torch ships no FLOP formula, so the two attention matmuls (QKᵀ and PV) went uncounted: DeiT-S at 896 px
  showed 67.5 GMAC instead of 158.2. ``SDPA_FLOP_FORMULAS`` supplies the formula.
* Counting a real forward at 1792 px and beyond takes minutes and tens of GB (DeiT-B's score matrices alone).
  FLOPs depend on shapes only, so ``count_flops`` runs the model on the ``meta`` device by default (parameters
  and input are shape-only tensors; nothing is computed). There SDPA takes its math path, two ``bmm`` calls that
  torch's own formulas count; the CPU formula above gives the same number (tests check both routes agree).

Only matmuls and convolutions are counted (torch's registry): elementwise ops, softmax and normalisation are
not, as in the papers' fvcore-style counts. The papers quote multiply-accumulates as "FLOPs": halve our figure
to compare (DeiT-S at 224: 9.2 GFLOPs here = 4.6 G in the DeiT and ViTAR tables).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops", "count_params", "sdpa_cpu_flops", "SDPA_FLOP_FORMULAS"]


def sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of softmax(QKᵀ)V for q [B, H, Nq, d], k [B, H, Nk, d], v [B, H, Nk, dv]: two batched matmuls."""
    b, h, nq, d = query_shape
    nk, dv = key_shape[-2], value_shape[-1]
    return 2 * b * h * nq * nk * d + 2 * b * h * nq * nk * dv


# Attention kernels torch has no formula for; the CUDA ones (flash, efficient, cudnn) are in torch's registry.
SDPA_FLOP_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: sdpa_cpu_flops}


def count_flops(model: torch.nn.Module, height: int, width: int | None = None, batch: int = 1,
                device: str = "meta") -> int:
    """FLOPs of one eval forward at ``height``×``width``: matmuls, convolutions and attention.

    ``device="meta"`` (default) counts from shapes alone, in milliseconds at any size; ``device="cpu"`` runs the
    real forward (the same count; only useful to check the formula).
    """
    from torch.func import functional_call

    width = height if width is None else width
    was_training = model.training
    model.eval()
    try:
        tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
        if device != "cpu":
            tensors = {k: torch.empty_like(v, device=device) for k, v in tensors.items()}
        x = torch.zeros(batch, 3, height, width, device=device)
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=SDPA_FLOP_FORMULAS) as counter:
            functional_call(model, tensors, (x,))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
