"""Training recipes: deterministic, in the training range, and faithful to the papers' objectives."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resvit_export.models import create_model
from resvit_export.models.navit import PackedNaViT, pack_images, patchify, unpack_logits
from resvit_export.models.resformer import multires_step
from resvit_export.reference import training


def test_sizes_cover_the_training_range_and_aspect_ratios():
    rng = np.random.default_rng(0)
    sizes = np.array([training.sample_size(rng) for _ in range(3000)])
    lo, hi = training.TRAIN_RANGE
    assert sizes.min() == lo and sizes.max() == hi
    aspect = sizes[:, 1] / sizes[:, 0]
    assert aspect.min() >= 1 / training.MAX_ASPECT - 0.02 and aspect.max() <= training.MAX_ASPECT + 0.02
    assert aspect.min() < 0.55 and aspect.max() > 1.8  # both orientations, near the extremes


@pytest.mark.parametrize("name", sorted(training.RECIPES))
def test_training_is_deterministic_and_changes_the_weights(name):
    recipe = dataclasses.replace(training.RECIPES[name], batch=4, warmup=1)
    threads = torch.get_num_threads()
    try:
        a = training.train(recipe, seed=3, steps=2).model.state_dict()
        b = training.train(recipe, seed=3, steps=2).model.state_dict()
    finally:
        torch.use_deterministic_algorithms(False)
        torch.set_num_threads(threads)
    init = create_model(recipe.model, seed=3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], init[k]) for k in a)


def test_multires_views_loss_is_resformers_loss_on_square_views():
    """On square views made the way models.resformer.multires_step makes them, the aspect-keeping loss used
    for training is the paper's loss exactly."""
    torch.manual_seed(0)
    model = create_model("resformer_test")
    images, labels = torch.randn(3, 3, 224, 224), torch.tensor([1, 4, 7])
    views = [images] + [F.interpolate(images, size=(r, r), mode="bilinear", align_corners=False, antialias=True)
                        for r in (160, 128)]
    ours, parts = training.multires_views_loss(model, views, labels)
    paper, paper_parts = multires_step(model, images, labels, resolutions=(224, 160, 128))
    assert torch.allclose(ours, paper, atol=1e-6)
    assert parts["scl"] == pytest.approx(float(paper_parts["scl"]), abs=1e-6)
    ours.backward()  # the teacher tokens are detached: only the student path carries gradient
    assert model.head.weight.grad is not None


def test_resformer_views_keep_the_aspect_ratio_inside_the_training_range():
    rng = np.random.default_rng(0)
    model = create_model("resformer_test").train()
    seen = []
    model.forward_features = lambda x, f=model.forward_features: (seen.append(tuple(x.shape[-2:])), f(x))[1]
    recipe = dataclasses.replace(training.RECIPES["resformer_test"], batch=2)
    for step in range(5):
        training._step_multires(model, recipe, rng, (0, step))
    lo, hi = training.TRAIN_RANGE
    for i in range(0, len(seen), 3):
        (h0, w0), *lower = seen[i: i + 3]
        assert all(lo <= s <= hi for hw in seen[i: i + 3] for s in hw)
        for (h, w), scale in zip(lower, training.RESFORMER_SCALES[1:]):
            assert abs(h - h0 * scale) <= 0.5 or h == lo
            assert abs(w - w0 * scale) <= 0.5 or w == lo


def test_token_drop_packing_keeps_a_random_subset_of_each_image():
    rng = np.random.default_rng(0)
    images = [torch.randn(3, 64, 96), torch.randn(3, 128, 64), torch.randn(3, 32, 48), torch.randn(3, 80, 80)]
    rates = np.array([0.5, 0.25, 0.0, 0.4])
    batch = training.pack_with_token_drop(images, rates, rng, patch_size=16, seq_len=32)
    assert batch.patches.shape[1] == 32
    for i, (img, rate) in enumerate(zip(images, rates)):
        s, slot = batch.index[i].tolist()
        mine = batch.image_ids[s] == slot
        gh, gw = img.shape[1] // 16, img.shape[2] // 16
        assert int(mine.sum()) == max(1, round(gh * gw * (1 - rate)))
        rows, cols = batch.coords[s, mine].T
        full = patchify(img[None], 16)[0]
        assert torch.equal(batch.patches[s, mine], full[rows * gw + cols])
        assert (batch.grid_hw[s, mine] == torch.tensor([gh, gw])).all()


def test_packing_without_dropping_equals_the_models_packer():
    torch.manual_seed(0)
    model = create_model("navit_test")
    images = [torch.randn(3, 64, 96), torch.randn(3, 128, 64), torch.randn(3, 48, 48)]
    ours = training.pack_with_token_drop(images, np.zeros(3), np.random.default_rng(0), 16, 32)
    theirs = pack_images(images, 16, max_seq_len=32)
    with torch.no_grad():
        a = unpack_logits(PackedNaViT(model)(*ours.inputs()), ours)
        b = unpack_logits(PackedNaViT(model)(*theirs.inputs()), theirs)
    assert torch.allclose(a, b, atol=1e-6)


def test_learning_rate_warms_up_then_decays_to_zero():
    recipe = dataclasses.replace(training.RECIPES["deit_test"], steps=1000, warmup=100, lr=1e-3)
    assert training._lr_at(recipe, 0) == pytest.approx(1e-5)
    assert training._lr_at(recipe, 99) == pytest.approx(1e-3)
    assert training._lr_at(recipe, 550) == pytest.approx(0.5e-3)
    assert training._lr_at(recipe, 1000) == pytest.approx(0.0, abs=1e-12)
    assert math.isclose(max(training._lr_at(recipe, s) for s in range(1000)), 1e-3)


def test_training_overrides_keep_the_state_dict_and_the_outputs():
    """ViTAR trains with its ATM cut to the stages 256 px needs; the weights are the registry model's and the
    outputs over the training range are identical."""
    recipe = training.RECIPES["vitar_test"]
    small = create_model("vitar_test", seed=0, **recipe.train_overrides)
    full = create_model("vitar_test", seed=0)
    assert small.atm.stages < full.atm.stages
    a, b = small.state_dict(), full.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for h, w in [(64, 64), (256, 240), (256, 256)]:
        x = torch.randn(2, 3, h, w)
        with torch.no_grad():
            assert torch.equal(small(x), full(x))
