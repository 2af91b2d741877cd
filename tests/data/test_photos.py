"""Builtin photographs: located without importing their packages, pinned by hash, cropped keeping aspect."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("PIL")
from resvit_export.data import photos  # noqa: E402
from resvit_export.errors import MissingDependencyError, UsageError  # noqa: E402


def test_every_builtin_photo_loads_as_rgb():
    for p in photos.BUILTIN_PHOTOS:
        rgb = photos.load_photo(p.name)
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and min(rgb.shape[:2]) >= 256
    assert len(photos.BUILTIN_PHOTOS) == 9 and all(p.licence for p in photos.BUILTIN_PHOTOS)


def test_builtin_photos_are_normalised_model_inputs_at_any_size():
    x = photos.builtin_photos(97, 301)
    assert x.shape == (9, 3, 97, 301) and x.dtype == np.float32 and np.isfinite(x).all()
    raw = photos.builtin_photos(97, 301, normalise=False)
    assert raw.min() >= 0.0 and raw.max() <= 1.0
    from resvit_export.validate.inputs import IMAGENET_MEAN, IMAGENET_STD

    np.testing.assert_allclose(x, (raw - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None], rtol=1e-6)


def test_photos_look_like_photos_not_noise():
    """Neighbouring pixels of a photograph are strongly correlated; Gaussian parity inputs are not."""
    x = photos.builtin_photos(224, 224, names=["chelsea", "rocket", "coffee"])
    a, b = x[..., :, :-1].ravel(), x[..., :, 1:].ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.9


def test_aspect_is_kept_by_cropping_not_stretching():
    """A wide request of a square photo is its central horizontal band, scaled once."""
    from PIL import Image

    rgb = photos.load_photo("astronaut")  # 512 x 512
    wide = photos.builtin_photos(128, 512, names=["astronaut"], normalise=False)[0]
    band = np.asarray(Image.fromarray(rgb[192:320]), dtype=np.float32).transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(wide, band, atol=1 / 255 + 1e-6)  # scale 1: the crop itself


def test_photo_inputs_cycle_mirrored_and_follow_the_seed():
    x = photos.photo_inputs(10, 64, 80, seed=0)
    assert x.shape == (10, 3, 64, 80)
    np.testing.assert_array_equal(x[9], x[0][:, :, ::-1])  # the tenth is the first, mirrored
    np.testing.assert_array_equal(photos.photo_inputs(2, 64, 80, seed=1)[0], x[1])
    np.testing.assert_array_equal(photos.photo_inputs(3, 64, 80, seed=5), photos.photo_inputs(3, 64, 80, seed=5))


def test_missing_package_is_a_dependency_error(monkeypatch):
    real = photos.importlib.util.find_spec
    monkeypatch.setattr(photos.importlib.util, "find_spec", lambda n: None if n == "skimage" else real(n))
    with pytest.raises(MissingDependencyError, match=r"resvit-export\[photos\]"):
        photos.load_photo("coffee")
    assert photos.load_photo("grace_hopper").shape[2] == 3  # matplotlib's photo is still found


def test_a_changed_file_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / "coffee.png"
    fake.write_bytes(photos.photo_path("coffee").read_bytes() + b"\0")
    monkeypatch.setattr(photos, "photo_path", lambda name: fake)
    with pytest.raises(MissingDependencyError, match="not the pinned"):
        photos.load_photo("coffee")
    with pytest.raises(UsageError, match="no builtin photo 'lena'"):
        photos.builtin_photos(64, names=["lena"])


def test_loading_photos_imports_neither_skimage_nor_matplotlib():
    code = ("import sys; from resvit_export.data.photos import builtin_photos; builtin_photos(32); "
            "print(sorted(m for m in ('skimage', 'matplotlib', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
