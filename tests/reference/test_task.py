"""The shape task: deterministic, resolution-free scenes whose label needs the shape and the aspect ratio."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from resvit_export.reference import task
from resvit_export.reference.training import sample_size


def test_same_seed_same_pixels_and_streams_are_disjoint():
    a = task.render_batch(task.heldout_scenes(4), 96, 160)
    b = task.render_batch(task.heldout_scenes(4), 96, 160)
    assert np.array_equal(a, b)
    train = task.draw_scenes(task.scene_rng(task.SceneStream.TRAIN, 0, 0, 0), 4)
    assert all(s != h for s in train for h in task.heldout_scenes(4))


def test_heldout_slice_is_independent_of_its_length():
    assert task.heldout_scenes(3, start=5) == task.heldout_scenes(10)[5:8]
    assert [s.label for s in task.heldout_scenes(12)] == [i % 10 for i in range(12)]


def test_training_batches_are_balanced():
    labels = task.labels_of(task.draw_scenes(np.random.default_rng(0), 32))
    assert np.bincount(labels, minlength=10).min() == 3 and np.bincount(labels, minlength=10).max() == 4


@pytest.mark.parametrize("label", range(task.NUM_CLASSES))
@pytest.mark.parametrize("hw", [(64, 64), (64, 128), (200, 100)])
def test_object_is_always_inside_the_image(label, hw):
    rng = np.random.default_rng(label)
    for _ in range(20):
        scene = dataclasses.replace(task.sample_scene(rng, label), px=float(rng.choice([-1, 1])),
                                    py=float(rng.choice([-1, 1])))  # pushed into a corner
        cover = task.coverage(scene, *hw)
        assert cover.sum() > 0
        border = np.concatenate([cover[0], cover[-1], cover[:, 0], cover[:, -1]])
        assert border.max() == 0.0, (label, hw)


def _axis_ratio(cover: np.ndarray) -> float:
    """Ratio of the principal standard deviations of the covered region (1 for a disc or a square)."""
    ys, xs = np.nonzero(cover > 0.5)
    eig = np.linalg.eigvalsh(np.cov(np.stack([xs, ys]).astype(float)))
    return float(np.sqrt(eig[1] / eig[0]))


def test_label_needs_the_pixel_aspect_ratio():
    """A disc stays round in a 2:1 image; squashing that image to a square makes it a 2:1 ellipse, i.e. the
    ellipse class. Resizing to a square destroys the label; keeping the aspect ratio keeps it."""
    disc = task.sample_scene(np.random.default_rng(1), label=0)
    cover = task.coverage(disc, 128, 256)
    assert _axis_ratio(cover) == pytest.approx(1.0, abs=0.05)
    squashed = cover.reshape(128, 128, 2).mean(axis=2)  # 128×256 -> 128×128 by averaging column pairs
    assert _axis_ratio(squashed) == pytest.approx(2.0, abs=0.1)
    assert task.ELONGATION_RANGE[0] <= _axis_ratio(squashed) <= task.ELONGATION_RANGE[1]


def test_same_scene_at_any_resolution():
    """Vector rendering: the 256 px image box-filtered to 64 px is the 64 px image (up to edge anti-aliasing)."""
    for scene in task.heldout_scenes(10):
        small = task.coverage(scene, 64, 96)
        large = task.coverage(scene, 256, 384).reshape(64, 4, 96, 4).mean(axis=(1, 3))
        assert np.abs(small - large).mean() < 0.01
        assert np.abs(small - large).max() < 0.5


def test_global_statistics_do_not_name_the_class():
    """The strongest global statistic, the object's exact area fraction (an oracle no model gets), names the
    class of under a fifth of held-out scenes with the best per-bin guess fitted on 3000 training scenes
    (chance: a tenth). The shape, not the colour histogram, carries the label."""
    def area_fractions(stream, n):
        out = []
        for i in range(n):
            rng = task.scene_rng(stream, 99, i)
            scene = task.sample_scene(rng)
            h, w = sample_size(rng)
            out.append((task.coverage(scene, h // 4, w // 4).mean(), scene.label))
        return np.array(out).T

    x_train, y_train = area_fractions(task.SceneStream.TRAIN, 3000)
    x_test, y_test = area_fractions(task.SceneStream.HELDOUT, 1000)
    edges = np.quantile(x_train, np.linspace(0, 1, 21)[1:-1])
    counts = np.zeros((len(edges) + 1, task.NUM_CLASSES))
    np.add.at(counts, (np.digitize(x_train, edges), y_train.astype(int)), 1)
    guess = counts.argmax(axis=1)[np.digitize(x_test, edges)]
    assert (guess == y_test).mean() < 0.2


def test_images_are_imagenet_normalised_float32():
    x = task.render_batch(task.heldout_scenes(2), 64, 64)
    assert x.dtype == np.float32 and x.shape == (2, 3, 64, 64)
    raw = x * task.IMAGENET_STD[None, :, None, None] + task.IMAGENET_MEAN[None, :, None, None]
    assert raw.min() >= -1e-6 and raw.max() <= 1 + 1e-6


def test_render_refuses_empty_sizes():
    with pytest.raises(ValueError, match="cannot render"):
        task.render(task.heldout_scenes(1)[0], 0, 64)
