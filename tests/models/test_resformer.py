"""ResFormer: shapes over the resolution range, GLPE properties, the multi-resolution loss, one ONNX export."""

import math

import pytest
import torch
import torch.nn.functional as F

from resvit_export.errors import ConfigError, InputSizeError
from resvit_export.models import create_model, list_models
from resvit_export.models.resformer import multires_step, sincos_2d_fractional

SIZES = [(224, 224), (448, 448), (1792, 1792), (320, 1024), (1024, 320), (232, 248), (97, 301)]
ORT_SIZES = [(224, 224), (448, 448), (1792, 1792), (320, 1024), (97, 301)]


@pytest.fixture(scope="module")
def model():
    return create_model("resformer_test")


def test_variants_registered():
    assert set(list_models("resformer")) == {"resformer_t", "resformer_s", "resformer_b", "resformer_test"}
    m = create_model("resformer_s", depth=1)
    assert m.cfg.dim == 384 and m.cfg.num_heads == 6 and m.blocks[0].attn.head_dim == 64
    with pytest.raises(ConfigError, match="multiple of 4"):
        create_model("resformer_test", dim=34, num_heads=2)


@pytest.mark.parametrize("h,w", SIZES)
def test_shapes_and_finite(model, h, w):
    b = 1 if max(h, w) >= 1792 else 2
    with torch.no_grad():
        out = model(torch.randn(b, 3, h, w))
    assert out.shape == (b, 10) and torch.isfinite(out).all()
    assert model.size_rule.grid(h, w) == (h // 16, w // 16)


def test_batch_consistency(model):
    x = torch.randn(3, 3, 97, 301)
    with torch.no_grad():
        full = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(full, single, atol=1e-5, rtol=1e-5)


def test_non_square_grid_is_not_transposed(model):
    """The token map really is gh×gw: transposing the image and the map gives the transposed PE, not a scramble."""
    pe = model.global_pos_embed(5, 12)
    assert pe.shape == (1, 32, 5, 12)
    raw = sincos_2d_fractional(5, 12, 32)
    raw_t = sincos_2d_fractional(12, 5, 32)
    torch.testing.assert_close(raw[:, :16], raw_t[:, 16:].transpose(-1, -2))  # y of 5×12 == x of 12×5


def test_global_pe_is_fractional():
    """Row j of an n-grid and row k·j of a k·n grid sit at the same fractional coordinate: identical encodings."""
    for n, k in [(7, 2), (14, 2), (6, 3), (14, 8)]:
        small = sincos_2d_fractional(n, n + 1, 64)
        big = sincos_2d_fractional(k * n, k * (n + 1), 64)
        torch.testing.assert_close(small, big[:, :, k - 1 :: k, k - 1 :: k], atol=1e-5, rtol=0)
    # The last row and column always encode 2π, whatever the grid.
    enc = sincos_2d_fractional(3, 9, 8)
    assert torch.allclose(enc[0, 0, -1, 0], torch.tensor(math.sin(2 * math.pi)), atol=1e-5)


def _interp_rows(enc: torch.Tensor, t_src: torch.Tensor, t_dst: torch.Tensor) -> torch.Tensor:
    """Linear interpolation along the last axis of enc [C, n] from positions t_src to t_dst (both increasing)."""
    idx = torch.searchsorted(t_src, t_dst).clamp(1, len(t_src) - 1)
    lo, hi = t_src[idx - 1], t_src[idx]
    wgt = ((t_dst - lo) / (hi - lo)).clamp(0, 1)
    return enc[:, idx - 1] * (1 - wgt) + enc[:, idx] * wgt


def test_global_pe_changes_smoothly_with_resolution():
    """The n and n+1 grids agree at the same fractional positions (up to interpolation error that shrinks with n),
    while comparing by integer index — what an absolute table does — differs a lot."""
    errs = []
    for n in (14, 28, 56):
        a = sincos_2d_fractional(n, n, 64)[0, :32, :, 0]  # y channels along the rows: [32, n]
        b = sincos_2d_fractional(n + 1, n + 1, 64)[0, :32, :, 0]
        t_a = torch.arange(1, n + 1) / n
        t_b = torch.arange(1, n + 2) / (n + 1)
        err = (a[:, 1:] - _interp_rows(b, t_b, t_a[1:])).abs().max().item()
        errs.append(err)
        by_index = (a - b[:, :n]).abs().max().item()
        assert err < 0.05 and by_index > 4 * err
    assert errs[0] > errs[1] > errs[2]


def test_local_pe_starts_at_zero_but_learns(model):
    x = torch.randn(2, 3, 97, 301)
    with torch.no_grad():
        with_lpe = model(x)
        for blk in model.blocks:
            blk.attn.local_pos_embed = lambda v, gh, gw: torch.zeros_like(v)
        try:
            without = model(x)
        finally:
            for blk in model.blocks:
                del blk.attn.local_pos_embed
    assert torch.equal(with_lpe, without)
    m = create_model("resformer_test", depth=3)
    m(x).square().sum().backward()
    for blk in m.blocks[:-1]:
        assert torch.count_nonzero(blk.attn.lpe.weight) == 0
        assert blk.attn.lpe.weight.grad is not None and blk.attn.lpe.weight.grad.abs().sum() > 0
        assert blk.attn.lpe.bias.grad.abs().sum() > 0
    # The last block's LPE only writes to patch tokens, which nothing downstream of the class token reads:
    # it is structurally dead in ResFormer's design (official code too), so its gradient is exactly zero.
    assert m.blocks[-1].attn.lpe.weight.grad.abs().sum() == 0


def _reference_loss(model, images, labels, resolutions, alpha):
    """The documented formula, written out independently (manual LayerNorm and smooth-L1)."""
    res = sorted(resolutions, reverse=True)
    cls, total = [], 0.0
    for r in res:
        x = images if images.shape[-1] == r else F.interpolate(images, size=(r, r), mode="bilinear",
                                                               antialias=True, align_corners=False)
        c = model.forward_head(model.forward_features(x), pre_logits=True)
        logp = model.head(c).log_softmax(-1)
        total = total - logp[torch.arange(len(labels)), labels].mean()
        if cls:
            t = cls[-1].detach()
            t = (t - t.mean(-1, keepdim=True)) / torch.sqrt(t.var(-1, unbiased=False, keepdim=True) + 1e-5)
            d = (c - t).abs()
            total = total + alpha * torch.where(d < 1, 0.5 * d**2, d - 0.5).mean()
        cls.append(c)
    return total / len(res)


def test_multires_step_matches_formula_and_reaches_every_parameter():
    m = create_model("resformer_test").train()
    images, labels = torch.randn(2, 3, 224, 224), torch.tensor([1, 7])
    loss, parts = multires_step(m, images, labels, resolutions=(128, 224, 160), alpha=0.5)
    with torch.no_grad():
        ref = _reference_loss(m, images, labels, (224, 160, 128), 0.5)
    torch.testing.assert_close(loss.detach(), ref, atol=1e-5, rtol=1e-5)
    assert set(parts) == {"ce_224", "ce_160", "ce_128", "scl_160", "scl_128", "ce", "scl"}
    torch.testing.assert_close(loss.detach(), (parts["ce"] + 0.5 * parts["scl"]) / 3)
    loss.backward()
    dead = {f"blocks.{len(m.blocks) - 1}.attn.lpe.weight", f"blocks.{len(m.blocks) - 1}.attn.lpe.bias"}
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        if name in dead:  # see test_local_pe_starts_at_zero_but_learns
            assert p.grad.abs().sum() == 0, name
        else:
            assert p.grad.abs().sum() > 0, name


def test_adamw_steps_reduce_the_loss():
    m = create_model("resformer_test").train()
    images, labels = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        loss, _ = multires_step(m, images, labels, resolutions=(64, 48, 32))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_min_size_error(model):
    with pytest.raises(InputSizeError, match="below this model's minimum"):
        model(torch.randn(1, 3, 31, 224))
    with pytest.raises(InputSizeError, match="below this model's minimum"):
        model(torch.randn(1, 3, 224, 16))
    model(torch.randn(1, 3, 32, 32))  # the minimum itself is accepted


# ---------------------------------------------------------------------------------------------------------------
# One dynamic-shape ONNX export, checked against eager in ONNX Runtime.

@pytest.fixture(scope="module")
def onnx_export(model, export_check, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "resformer_test.onnx"
    return export_check.export(model, path), path


def test_onnx_export_matches_eager_over_the_range(model, onnx_export, export_check):
    program, path = onnx_export
    export_check.ranges_kept(program)
    export_check.ort_matches(model, path, ORT_SIZES)
