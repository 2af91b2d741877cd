"""Real photographs for INT8 calibration and parity checks, read from files that installed wheels ship.

Random pixels and synthetic shapes do not produce a trained network's activation ranges; photographs do. Nine
permissively licensed photos are already on disk once the ``photos`` extra is installed (``make install`` does):

| name | file | licence (as stated by the shipping package) |
|---|---|---|
| astronaut | scikit-image ``skimage/data/astronaut.png`` | public domain (NASA, Eileen Collins) |
| camera | scikit-image ``skimage/data/camera.png`` (grey) | CC0 (photographer Lav Varshney) |
| chelsea | scikit-image ``skimage/data/chelsea.png`` | CC0 (photographer Stefan van der Walt) |
| coffee | scikit-image ``skimage/data/coffee.png`` | CC0 (photographer Rachel Michetti) |
| hubble_deep_field | scikit-image ``skimage/data/hubble_deep_field.jpg`` | public domain (NASA) |
| retina | scikit-image ``skimage/data/retina.jpg`` | CC0 1.0 (Mikael Häggström, Wikimedia Commons) |
| rocket | scikit-image ``skimage/data/rocket.jpg`` | public domain (SpaceX, DSCOVR launch) |
| gravel | scikit-image ``skimage/data/gravel.png`` (grey) | CC0 (CC0Textures "Gravel04") |
| grace_hopper | matplotlib ``mpl-data/sample_data/grace_hopper.jpg`` | public domain (official U.S. Navy photograph) |

scikit-image's licences are those in the docstrings of ``skimage.data`` (0.26.0). scikit-learn's two photos
(china.jpg, flower.jpg) are CC-BY 2.0 and would pull scikit-learn for two images, so they are not used.

The files are located with ``importlib.util.find_spec`` and read with Pillow: neither scikit-image nor
matplotlib is imported (``import resvit_export`` stays light), and each file's sha256 is checked, so the same
pixels feed every calibration and parity run on every machine.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resvit_export.errors import MissingDependencyError, UsageError

__all__ = ["Photo", "BUILTIN_PHOTOS", "photo_path", "load_photo", "builtin_photos", "photo_inputs"]


@dataclass(frozen=True)
class Photo:
    name: str
    package: str  # importable top-level package that ships the file
    relpath: str  # path inside that package
    sha256: str  # first 16 hex digits of the file's sha256
    licence: str


_SKIMAGE = "skimage"
BUILTIN_PHOTOS: tuple[Photo, ...] = (
    Photo("astronaut", _SKIMAGE, "data/astronaut.png", "88431cd9653ccd53", "public domain (NASA)"),
    Photo("camera", _SKIMAGE, "data/camera.png", "b0793d2adda0fa6a", "CC0 (Lav Varshney)"),
    Photo("chelsea", _SKIMAGE, "data/chelsea.png", "596aa1e7cb875eb7", "CC0 (Stefan van der Walt)"),
    Photo("coffee", _SKIMAGE, "data/coffee.png", "cc02f8ca188b167c", "CC0 (Rachel Michetti)"),
    Photo("hubble_deep_field", _SKIMAGE, "data/hubble_deep_field.jpg", "3a19c5dd8a927a93", "public domain (NASA)"),
    Photo("retina", _SKIMAGE, "data/retina.jpg", "38a07f36f27f095e", "CC0 1.0 (Mikael Häggström)"),
    Photo("rocket", _SKIMAGE, "data/rocket.jpg", "c2dd0de7c538df8d", "public domain (SpaceX)"),
    Photo("gravel", _SKIMAGE, "data/gravel.png", "c48615b451bf1e60", "CC0 (CC0Textures)"),
    Photo("grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "a8ca6d734765703b",
          "public domain (U.S. Navy)"),
)
_BY_NAME = {p.name: p for p in BUILTIN_PHOTOS}
_INSTALL_HINT = "install the photos extra: pip install 'resvit-export[photos]' (make install does)"


def _get(name: str) -> Photo:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UsageError(f"no builtin photo {name!r}; choose from {', '.join(_BY_NAME)}") from None


def photo_path(name: str) -> Path:
    """Where the installed package keeps photo ``name`` (the package is located, not imported)."""
    photo = _get(name)
    spec = importlib.util.find_spec(photo.package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"builtin photo {name!r} comes with the {photo.package} package, which is not "
                                     f"installed; {_INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / photo.relpath
    if not path.is_file():
        raise MissingDependencyError(f"the installed {photo.package} has no {photo.relpath} (builtin photo {name!r}); "
                                     f"{_INSTALL_HINT}")
    return path


def load_photo(name: str) -> np.ndarray:
    """Photo ``name`` as uint8 RGB [H, W, 3] (grey photos repeat the channel); the file's sha256 is checked."""
    from PIL import Image

    path = photo_path(name)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    if digest != _get(name).sha256:
        raise MissingDependencyError(
            f"{path} has sha256 {digest}..., not the pinned {_get(name).sha256}...: this {_get(name).package} "
            f"version ships a different photo; install the version pinned in constraints.txt")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _cover_crop(rgb: np.ndarray, h: int, w: int, mirror: bool = False) -> np.ndarray:
    """Resize to cover h×w keeping the aspect ratio, centre-crop, bicubic (Pillow, antialiased): [3, h, w] in [0, 1]."""
    from PIL import Image

    H0, W0 = rgb.shape[:2]
    scale = max(h / H0, w / W0)
    ch, cw = h / scale, w / scale  # the source region that maps onto the output, in source pixels
    top, left = max(0.0, (H0 - ch) / 2), max(0.0, (W0 - cw) / 2)  # clamp float rounding (-1e-14)
    box = (left, top, min(float(W0), left + cw), min(float(H0), top + ch))
    out = Image.fromarray(rgb).resize((w, h), Image.Resampling.BICUBIC, box=box)
    arr = np.asarray(out, dtype=np.float32) / 255.0
    if mirror:
        arr = arr[:, ::-1]
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def builtin_photos(height: int, width: int | None = None, names: list[str] | None = None,
                   normalise: bool = True) -> np.ndarray:
    """Every builtin photo (or ``names``) at ``height``×``width``: float32 [N, 3, H, W].

    Each photo is scaled to cover the requested size with its aspect ratio kept, then centre-cropped, so a
    1792×224 request gets a horizontal strip, not a squashed image. ``normalise`` applies ImageNet mean/std
    (the models' input convention); otherwise values are in [0, 1].
    """
    width = height if width is None else width
    if height < 1 or width < 1:
        raise UsageError(f"photo size must be positive, got {height}x{width}")
    chosen = list(names) if names is not None else [p.name for p in BUILTIN_PHOTOS]
    batch = np.stack([_cover_crop(load_photo(n), height, width) for n in chosen])
    return _normalise(batch) if normalise else batch


def photo_inputs(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """``n`` photo inputs [n, 3, h, w], ImageNet-normalised; same signature as ``validate.inputs.gaussian``.

    The seed picks where in the list of photos the batch starts; past the ninth photo the list repeats
    mirrored left-right, so a batch of up to 18 holds no two identical images.
    """
    count = len(BUILTIN_PHOTOS)
    items = []
    for i in range(n):
        k = seed % count + i
        photo = BUILTIN_PHOTOS[k % count]
        items.append(_cover_crop(load_photo(photo.name), h, w, mirror=(k // count) % 2 == 1))
    return _normalise(np.stack(items))


def _normalise(img01: np.ndarray) -> np.ndarray:
    from resvit_export.validate.inputs import IMAGENET_MEAN, IMAGENET_STD

    return ((img01 - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]).astype(np.float32)
