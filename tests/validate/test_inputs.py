import numpy as np

from resvit_export.validate.inputs import IMAGENET_MEAN, IMAGENET_STD, case_seed, gaussian, synthetic_images


def _lag1_autocorr(x: np.ndarray) -> float:
    """Mean correlation between horizontally adjacent pixels (per image and channel)."""
    a, b = x[..., :, :-1].reshape(-1), x[..., :, 1:].reshape(-1)
    return float(np.corrcoef(a, b)[0, 1])


def test_inputs_are_deterministic_and_shaped():
    for fn in (gaussian, synthetic_images):
        a, b = fn(2, 97, 301, seed=5), fn(2, 97, 301, seed=5)
        assert a.shape == (2, 3, 97, 301) and a.dtype == np.float32
        assert np.array_equal(a, b)
        assert not np.array_equal(a, fn(2, 97, 301, seed=6))
    assert case_seed("min-32x32-b1") == case_seed("min-32x32-b1") != case_seed("max-32x32-b1")


def test_synthetic_images_look_like_images_not_noise():
    img = synthetic_images(4, 128, 192, seed=0)
    noise = gaussian(4, 128, 192, seed=0)
    # strong spatial autocorrelation (photos: ~0.9+), Gaussian noise: ~0
    assert _lag1_autocorr(img) > 0.8
    assert abs(_lag1_autocorr(noise)) < 0.05
    # ImageNet-normalised pixels from [0, 1]: bounded by the normalisation of 0 and 1
    lo = (0 - IMAGENET_MEAN) / IMAGENET_STD
    hi = (1 - IMAGENET_MEAN) / IMAGENET_STD
    assert (img >= lo[None, :, None, None] - 1e-5).all() and (img <= hi[None, :, None, None] + 1e-5).all()
    # hard edges exist (shapes): some large neighbour jumps, while most neighbours are close
    d = np.abs(np.diff(img, axis=-1))
    assert np.quantile(d, 0.5) < 0.1 and d.max() > 1.0
    # images in a batch differ
    assert not np.allclose(img[0], img[1])


def test_synthetic_images_at_extreme_aspect_ratios():
    for h, w in ((32, 1024), (1024, 32), (33, 47)):
        x = synthetic_images(1, h, w, seed=1)
        assert x.shape == (1, 3, h, w) and np.isfinite(x).all()
