"""NaViT: single-image and packed paths agree, masks isolate images, fractional PE, token dropping, ONNX export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.export import Dim

from resvit_export.errors import InputSizeError
from resvit_export.models import create_model
from resvit_export.models.navit import (
    PackedNaViT,
    first_fit,
    interp_table,
    pack_images,
    patchify,
    unpack_logits,
)

pytestmark = pytest.mark.filterwarnings("ignore:# The axis name")

SIZES = [(224, 224), (448, 448), (1792, 1792), (320, 1024), (1024, 320), (232, 248), (97, 301)]
MIXED = [(64, 64), (32, 160), (97, 301), (224, 224), (48, 80), (128, 96), (33, 47)]


def _images(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, h, w, generator=g) for h, w in sizes]


@pytest.fixture(scope="module")
def model():
    return create_model("navit_test")


# -- single-image path -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("hw", SIZES, ids=lambda hw: f"{hw[0]}x{hw[1]}")
def test_single_image_shapes_and_finite(model, hw):
    with torch.no_grad():
        out = model(torch.randn(1, 3, *hw))
    assert out.shape == (1, 10) and torch.isfinite(out).all()


def test_batch_consistency(model):
    x = torch.randn(3, 3, 97, 301)
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


def test_min_size_error(model):
    with pytest.raises(InputSizeError, match="below this model's minimum"):
        model(torch.randn(1, 3, 16, 224))
    with pytest.raises(InputSizeError, match="4-D"):
        model(torch.randn(3, 224, 224))
    assert model.size_rule.min_side == 32


# -- packed path -------------------------------------------------------------------------------------------------
def test_packed_matches_single_image(model):
    imgs = _images(MIXED + [(320, 1024), (1024, 320), (232, 248)])
    batch = pack_images(imgs, max_seq_len=1400)
    assert batch.patches.shape[0] < len(imgs)  # really packed several images per sequence
    with torch.no_grad():
        packed = unpack_logits(PackedNaViT(model)(*batch.inputs()), batch)
        single = torch.cat([model(img[None]) for img in imgs])
    torch.testing.assert_close(packed, single, atol=1e-4, rtol=0)


def test_masks_isolate_images(model):
    imgs = _images([(64, 64), (32, 160), (48, 80)])
    batch = pack_images(imgs, max_seq_len=64)
    assert batch.patches.shape[0] == 1 and batch.index[:, 1].tolist() == [0, 1, 2]
    pk = PackedNaViT(model)
    with torch.no_grad():
        base = pk(*batch.inputs())
        patches = batch.patches.clone()
        patches[batch.image_ids == 1] += 3.0  # perturb image 1 only
        patches[batch.image_ids == -1] = 7.0  # and the pads
        pert = pk(patches, *batch.inputs()[1:])
    assert torch.isfinite(base).all() and torch.isfinite(pert).all()
    torch.testing.assert_close(pert[0, [0, 2]], base[0, [0, 2]], atol=1e-6, rtol=0)
    assert (pert[0, 1] - base[0, 1]).abs().max() > 1e-3


def test_empty_slots_and_pads_are_finite(model):
    batch = pack_images(_images([(64, 64), (64, 64), (32, 32)]), max_seq_len=20)
    with torch.no_grad():
        out = PackedNaViT(model)(*batch.inputs())
    assert torch.isfinite(out).all()
    assert (out[~batch.image_valid] == 0).all()


def test_first_fit_packing():
    lengths = [60, 10, 50, 40, 5, 64, 30, 3]
    bins = first_fit(lengths, 64)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 64 for b in bins)
    assert bins == [[0, 7], [1, 2], [3, 4], [5], [6]]  # each item goes to the FIRST bin with room
    with pytest.raises(InputSizeError, match="max_seq_len"):
        first_fit([65], 64)

    imgs = _images([(64, 64), (128, 32), (32, 32), (96, 96), (48, 160)])
    batch = pack_images(imgs, max_seq_len=40)
    N = batch.patches.shape[1]
    assert N == 40
    counts = [(batch.image_ids[s] >= 0).sum().item() for s in range(batch.patches.shape[0])]
    assert max(counts) <= 40
    seen = {tuple(ix) for ix in batch.index.tolist()}
    assert len(seen) == len(imgs)  # every image exactly once, in distinct slots
    for i, (img, (s, e)) in enumerate(zip(imgs, batch.index.tolist())):
        sel = batch.image_ids[s] == e
        torch.testing.assert_close(batch.patches[s][sel], patchify(img[None], 16)[0])
        assert (batch.grid_hw[s][sel] == torch.tensor([img.shape[1] // 16, img.shape[2] // 16])).all()
    with pytest.raises(InputSizeError):
        pack_images(_images([(224, 224)]), max_seq_len=100)


# -- positional embedding ----------------------------------------------------------------------------------------
def test_fractional_pe_is_resolution_independent(model):
    # patch centres: (p + 0.5)/s == (3p + 1.5)/(3s), so patch p of an s-grid and patch 3p+1 of a 3s-grid coincide
    pe4 = model.grid_pos_embed(4, 5).reshape(4, 5, -1)
    pe12 = model.grid_pos_embed(12, 15).reshape(12, 15, -1)
    torch.testing.assert_close(pe12[1::3, 1::3], pe4, atol=1e-6, rtol=0)
    # the packed (per-token) form is the same function
    rr, cc = torch.meshgrid(torch.arange(12), torch.arange(15), indexing="ij")
    tok = model.pos_embed(rr, cc, torch.tensor(12), torch.tensor(15))
    torch.testing.assert_close(tok, pe12, atol=0, rtol=0)


def test_pe_is_sum_of_factorized_linear_interpolations(model):
    gh, gw = 7, 19
    pe = model.grid_pos_embed(gh, gw).reshape(gh, gw, -1)
    py = F.interpolate(model.pos_y.T[None], size=gh, mode="linear", align_corners=False)[0].T
    px = F.interpolate(model.pos_x.T[None], size=gw, mode="linear", align_corners=False)[0].T
    torch.testing.assert_close(pe, py[:, None] + px[None, :], atol=1e-6, rtol=0)
    # the x part depends on columns only, the y part on rows only
    torch.testing.assert_close(pe[3] - pe[0], (py[3] - py[0]).expand(gw, -1), atol=1e-6, rtol=0)
    # interpolation hits table rows exactly at their centres and is linear in between
    L = model.pos_y.shape[0]
    r = torch.tensor([0.5 / L, 1.5 / L, 1.0 / L])
    got = interp_table(model.pos_y, r)
    torch.testing.assert_close(got[0], model.pos_y[0])
    torch.testing.assert_close(got[1], model.pos_y[1])
    torch.testing.assert_close(got[2], 0.5 * (model.pos_y[0] + model.pos_y[1]))


# -- token dropping ----------------------------------------------------------------------------------------------
def test_token_dropping_only_in_training():
    m = create_model("navit_test", token_drop_rate=0.5)
    x = torch.randn(2, 3, 64, 96)  # 4×6 = 24 tokens -> keeps 12
    with torch.no_grad():
        ev = m(x)
        torch.testing.assert_close(ev, create_model("navit_test")(x))  # eval ignores the rate
        assert m.forward_features(x).shape == (2, 24, 32)
        m.train()
        assert m.forward_features(x).shape == (2, 12, 32)
        tr = m(x)
    assert not torch.allclose(tr, ev, atol=1e-4)

    imgs = _images([(64, 96), (32, 160), (48, 48)])
    batch = pack_images(imgs, max_seq_len=64)
    pk = PackedNaViT(m)
    ids = pk._drop_ids(batch.image_ids, batch.image_valid.shape[1])
    kept = [(ids == e).sum().item() for e in range(3)]
    assert kept == [12, 10, 4]  # round(n/2) of 24, 20, 9 (round half to even: 4.5 -> 4)
    assert ((ids == -1) | (ids == batch.image_ids)).all()
    with torch.no_grad():
        tr_p = unpack_logits(pk(*batch.inputs()), batch)
        m.eval()
        ev_p = unpack_logits(pk(*batch.inputs()), batch)
    assert torch.isfinite(tr_p).all() and not torch.allclose(tr_p, ev_p, atol=1e-4)


# -- training ---------------------------------------------------------------------------------------------------
def test_optimisation_reduces_loss():
    m = create_model("navit_test", seed=1).train()
    imgs = _images([(64, 64), (32, 160), (97, 128), (48, 80)], seed=3)
    batch = pack_images(imgs, max_seq_len=64)
    target = torch.tensor([1, 2, 3, 4])
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    pk = PackedNaViT(m)
    losses = []
    for _ in range(8):
        loss = F.cross_entropy(unpack_logits(pk(*batch.inputs()), batch), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# -- ONNX export (ONNX Runtime vs eager) -----------------------------------------------------------------------------
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def image_onnx(model, tmp_path_factory):
    ds = {"x": {0: Dim("batch", min=1, max=8), 2: Dim("height", min=32, max=4096), 3: Dim("width", min=32, max=4096)}}
    prog = torch.onnx.export(model, (torch.randn(2, 3, 232, 248),), dynamic_shapes=ds, dynamo=True,
                             opset_version=18, verbose=False, output_names=["logits"])
    path = tmp_path_factory.mktemp("navit") / "image.onnx"
    prog.save(str(path))
    ranges = sorted((r.lower, r.upper) for r in prog.exported_program.range_constraints.values())
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), ranges


@pytest.fixture(scope="module")
def packed_onnx(model, tmp_path_factory):
    example = pack_images(_images(MIXED), max_seq_len=256)
    assert example.patches.shape[0] == 2
    S, N, E = Dim("seqs", min=1, max=64), Dim("tokens", min=1, max=16384), Dim("images", min=1, max=256)
    ds = ({0: S, 1: N}, {0: S, 1: N}, {0: S, 1: N}, {0: S, 1: N}, {0: S, 1: E})
    prog = torch.onnx.export(PackedNaViT(model).eval(), example.inputs(), dynamic_shapes=ds, dynamo=True,
                             opset_version=18, verbose=False, output_names=["logits"])
    path = tmp_path_factory.mktemp("navit") / "packed.onnx"
    prog.save(str(path))
    ranges = sorted((r.lower, r.upper) for r in prog.exported_program.range_constraints.values())
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), ranges


def _check_image(model, sess, hw, batch):
    x = torch.randn(batch, 3, *hw)
    with torch.no_grad():
        ref = model(x).numpy()
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4


def test_image_onnx_matches_eager(model, image_onnx):
    sess, ranges = image_onnx
    assert ranges == [(1, 8), (32, 4096), (32, 4096)]  # batch, height, width not narrowed
    for hw, b in [((224, 224), 2), ((448, 448), 1), ((320, 1024), 1), ((97, 301), 3), ((1024, 320), 1)]:
        _check_image(model, sess, hw, b)


@pytest.mark.slow
def test_image_onnx_matches_eager_1792(model, image_onnx):
    _check_image(model, image_onnx[0], (1792, 1792), 1)  # ~12 s in ONNX Runtime on 2 CPU cores


def test_packed_onnx_matches_eager_on_other_packings(model, packed_onnx):
    sess, ranges = packed_onnx
    assert ranges == [(1, 64), (1, 256), (1, 16384)]  # S, E, N not narrowed
    names = [i.name for i in sess.get_inputs()]
    pk = PackedNaViT(model)
    for sizes, seq_len in [([(32, 32)], None), ([(320, 1024), (1024, 320), (232, 248), (33, 500)], 1400),
                           ([(64, 64)] * 7 + [(480, 32)], 64)]:
        batch = pack_images(_images(sizes, seed=5), max_seq_len=seq_len)
        with torch.no_grad():
            ref = pk(*batch.inputs()).numpy()
        got = sess.run(None, dict(zip(names, [t.numpy() for t in batch.inputs()])))[0]
        assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4
        # and the packed graph equals the single-image model image by image
        single = torch.cat([model(img[None]) for img in _images(sizes, seed=5)]).detach().numpy()
        assert np.abs(unpack_logits(torch.from_numpy(got), batch).numpy() - single).max() < 1e-4
