"""RIViT: export-safe adaptive pooling, 256 tokens at every size, training sanity, one ONNX export."""

import pytest
import torch
import torch.nn.functional as F

from resvit_export.errors import ConfigError, InputSizeError
from resvit_export.models import create_model, list_models
from resvit_export.models.rivit import adaptive_avg_pool2d_exportable, adaptive_pool_matrix

SIZES = [(224, 224), (448, 448), (1792, 1792), (320, 1024), (1024, 320), (232, 248), (97, 301)]
ORT_SIZES = [(224, 224), (448, 448), (1792, 1792), (320, 1024), (97, 301)]
POOL_SIZES = [(64, 64), (97, 97), (130, 130), (224, 224), (301, 301), (1024, 1024), (33, 33),
              (97, 301), (1024, 33), (130, 64), (63, 65), (1, 7)]


@pytest.fixture(scope="module")
def model():
    return create_model("rivit_test")


def test_variants_registered():
    assert set(list_models("rivit")) == {"rivit", "rivit_test"}
    m = create_model("rivit")
    assert m.cfg.dim == 128 and len(m.blocks) == 6 and m.cfg.pos == "relative"
    attn = m.blocks[0].attn
    assert attn.num_heads == 3 and attn.head_dim == 64 and attn.qkv.out_features == 3 * 192
    with pytest.raises(ConfigError, match="pos must be"):
        create_model("rivit_test", pos="learned")


@pytest.mark.parametrize("h,w", POOL_SIZES)
def test_pool_equals_adaptive_avg_pool(h, w):
    x = torch.randn(2, 3, h, w)
    torch.testing.assert_close(adaptive_avg_pool2d_exportable(x, 64), F.adaptive_avg_pool2d(x, 64),
                               atol=1e-5, rtol=1e-5)


def test_pool_matrix_rows_are_pytorch_bins():
    a = adaptive_pool_matrix(97, 64)
    torch.testing.assert_close(a.sum(1), torch.ones(64))
    i = 10  # bin [floor(10·97/64), ceil(11·97/64)) = [15, 17)
    assert a[i].nonzero().flatten().tolist() == [15, 16]


@pytest.mark.parametrize("h,w", SIZES)
def test_shapes_and_finite(model, h, w):
    b = 1 if max(h, w) >= 1792 else 2
    seen = []
    hook = model.patch_embed.register_forward_hook(lambda mod, inp, out: seen.append(tuple(out.shape[-2:])))
    try:
        with torch.no_grad():
            out = model(torch.randn(b, 3, h, w))
    finally:
        hook.remove()
    assert out.shape == (b, 10) and torch.isfinite(out).all()
    assert seen == [(16, 16)] and model.size_rule.grid(h, w) == (16, 16)  # 256 tokens at every size


@pytest.mark.parametrize("name,pos", [("rivit", "relative"), ("rivit", "sincos"), ("rivit_test", "sincos")])
def test_other_variants_run(name, pos):
    m = create_model(name, pos=pos)
    with torch.no_grad():
        out = m(torch.randn(2, 3, 97, 301))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_relative_bias_depends_only_on_offset(model):
    bias = model.relative_bias()[0]  # [heads, 256, 256]
    assert bias.shape == (2, 256, 256)
    idx = lambda r, c: r * 16 + c  # noqa: E731
    torch.testing.assert_close(bias[:, idx(0, 0), idx(1, 2)], bias[:, idx(7, 9), idx(8, 11)])
    assert not torch.equal(bias[:, idx(0, 0), idx(1, 2)], bias[:, idx(0, 0), idx(2, 1)])


def test_batch_consistency(model):
    x = torch.randn(3, 3, 97, 301)
    with torch.no_grad():
        full = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(full, single, atol=1e-5, rtol=1e-5)


def test_optimisation_steps_reduce_the_loss():
    m = create_model("rivit_test").train()
    images, labels = torch.randn(4, 3, 80, 64), torch.tensor([0, 1, 2, 3])
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        loss = F.cross_entropy(m(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0], losses
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_min_size_error(model):
    with pytest.raises(InputSizeError, match="below this model's minimum"):
        model(torch.randn(1, 3, 31, 224))
    with pytest.raises(InputSizeError, match="below this model's minimum"):
        model(torch.randn(1, 3, 224, 16))
    model(torch.randn(1, 3, 32, 33))  # below the 64 px pool grid is fine: bins overlap like PyTorch's


# ---------------------------------------------------------------------------------------------------------------
# One dynamic-shape ONNX export, checked against eager in ONNX Runtime.

@pytest.fixture(scope="module")
def onnx_export(model, export_check, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "rivit_test.onnx"
    return export_check.export(model, path), path


def test_onnx_export_matches_eager_over_the_range(model, onnx_export, export_check):
    program, path = onnx_export
    export_check.ranges_kept(program)
    export_check.ort_matches(model, path, ORT_SIZES)
