"""The reference task: name the shape in a procedurally rendered image, at any resolution and aspect ratio.

Why this task (the reference weights exist to make accuracy and INT8/FP16 agreement mean something):

* **Resolution matters.** A scene is described in image-relative units and rendered as vector graphics
  (anti-aliased signed distances), so the same scene can be drawn at 64 px or at 512 px. Like a photo taken
  with more pixels, the object's apparent size in *patches* grows with the resolution: at 64 px a shape
  spans 2-3.6 patches, at 512 px 16-29. A model trained at 64-256 px must recognise shapes at patch scales
  it never saw, which is exactly the test-resolution problem the papers measure on ImageNet.
* **Aspect ratio matters.** Discs and squares have elongated counterparts (ellipses and rectangles with
  axis ratio 1.8-2.5). Squashing a 2:1 image to a square turns a disc into a 2:1 ellipse, so the label is only
  recoverable when the pixel aspect ratio is kept; images are rendered at aspect ratios from 1:2 to 2:1.
* **Global colour statistics do not solve it.** Foreground and background colours are random and independent
  of the class; the object's size varies by a factor of 1.8 in radius, so the area fractions of the classes
  overlap; a smooth background ramp and pixel noise vary the histogram further. The shape is the only signal.
* **Cheap and exact.** numpy only, a few milliseconds per image; the same (seed, index) gives the same array
  on every platform (PCG64 ``default_rng``, draws in a fixed order).

Seeds: training draws scenes from ``SceneStream.TRAIN`` and the held-out set from ``SceneStream.HELDOUT``;
the two streams are disjoint seed ranges (``numpy.random.SeedSequence`` entropy 0 vs 1), so no held-out scene
is ever trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from resvit_export.validate.inputs import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "CLASS_NAMES",
    "NUM_CLASSES",
    "Scene",
    "SceneStream",
    "sample_scene",
    "coverage",
    "render",
    "render_batch",
    "normalise",
    "scene_rng",
    "draw_scenes",
    "heldout_scenes",
    "labels_of",
]

CLASS_NAMES = ("disc", "ellipse", "square", "rectangle", "triangle", "ring", "cross", "star", "frame", "half-disc")
NUM_CLASSES = len(CLASS_NAMES)

# Object size: radius of the circle that bounds the shape, as a fraction of the image's SHORTER side.
RADIUS_RANGE = (0.25, 0.45)
ELONGATION_RANGE = (1.8, 2.5)  # ellipse / rectangle axis ratio
BORDER_MARGIN = 0.04  # the object keeps this gap to the image border (2.5 px at 64 px)
# Object and background colours: one from the dark band, one from the light band (per channel), which one is
# the object decided by a coin. Random hue and random polarity; every channel's edge has the same sign, which
# a tiny model learns in minutes (fully random colour pairs needed far more steps than a CPU budget allows).
DARK_BAND, LIGHT_BAND = (0.0, 0.45), (0.55, 1.0)
RAMP_SPAN = 0.1  # the background ramps from bg0 to bg0 ± this per channel: a gentle gradient, not a second object
NOISE_STD = 0.03


class SceneStream(IntEnum):
    """Disjoint seed ranges: the first entropy word of every scene's SeedSequence."""

    TRAIN = 0
    HELDOUT = 1


@dataclass(frozen=True)
class Scene:
    """One image's content in resolution-free units (lengths are fractions of the shorter side)."""

    label: int
    px: float  # object centre in [-1, 1]: where it sits in the range that keeps it inside (any aspect ratio)
    py: float
    radius: float  # bounding-circle radius
    angle: float  # rotation, radians
    shape_param: float  # elongation (ellipse, rectangle) or inner/outer ratio (ring, frame) or arm width (cross)
    fg: tuple[float, float, float]
    bg0: tuple[float, float, float]
    bg1: tuple[float, float, float]
    ramp_angle: float
    noise_seed: int


def scene_rng(stream: SceneStream, *key: int) -> np.random.Generator:
    """The generator for one scene (or one training step): its seed is (stream, *key), never shared."""
    return np.random.default_rng(np.random.SeedSequence([int(stream), *map(int, key)]))


def sample_scene(rng: np.random.Generator, label: int | None = None) -> Scene:
    """Draw one scene. It renders at any size and aspect ratio, the object always inside the image."""
    label = int(rng.integers(NUM_CLASSES)) if label is None else int(label)
    radius = float(rng.uniform(*RADIUS_RANGE))
    px, py = (float(v) for v in rng.uniform(-1.0, 1.0, 2))
    angle = float(rng.uniform(0.0, 2 * np.pi))
    if label in (1, 3):
        shape_param = float(rng.uniform(*ELONGATION_RANGE))
    elif label in (5, 8):
        shape_param = float(rng.uniform(0.5, 0.7))
    elif label == 6:
        shape_param = float(rng.uniform(0.3, 0.45))
    else:
        shape_param = 0.0
    dark, light = rng.uniform(*DARK_BAND, 3), rng.uniform(*LIGHT_BAND, 3)
    fg, bg0 = (light, dark) if rng.uniform() < 0.5 else (dark, light)
    bg1 = np.clip(bg0 + rng.uniform(-RAMP_SPAN, RAMP_SPAN, 3), 0.0, 1.0)
    return Scene(label, px, py, radius, angle, shape_param, tuple(fg), tuple(bg0), tuple(bg1),
                 float(rng.uniform(0.0, 2 * np.pi)), int(rng.integers(2**31)))


# ----------------------------------------------------------------------------------------------------
# Signed distances (negative inside), in shorter-side units, in the object's rotated frame
# ----------------------------------------------------------------------------------------------------
def _box(u: np.ndarray, v: np.ndarray, a: float, b: float) -> np.ndarray:
    qx, qy = np.abs(u) - a, np.abs(v) - b
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0)


def _triangle(u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    # equilateral triangle with circumradius r, a vertex pointing to -v: max of the three edge half-planes
    inradius = r / 2
    d = v - inradius
    for k in (1, 2):
        t = 2 * math.pi * k / 3
        d = np.maximum(d, u * math.sin(t) + v * math.cos(t) - inradius)
    return d


def _star(u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    # five points; the boundary radius goes linearly (in angle) from r at a tip to 0.45·r between tips
    theta = np.arctan2(v, u)
    frac = np.abs(((theta * (5 / (2 * math.pi))) % 1.0) - 0.5) * 2  # 1 at a tip, 0 halfway between tips
    boundary = r * (0.45 + 0.55 * frac)
    return (np.hypot(u, v) - boundary) * 0.6  # 0.6: the radial distance overestimates the true one near edges


def _signed_distance(scene: Scene, x: np.ndarray, y: np.ndarray, aspect: float) -> np.ndarray:
    # image half-extent in shorter-side units: 0.5 along the shorter axis, 0.5·aspect or 0.5/aspect along the other
    half_w, half_h = 0.5 * max(aspect, 1.0), 0.5 * max(1.0 / aspect, 1.0)
    reach = scene.radius + BORDER_MARGIN
    cx, cy = scene.px * (half_w - reach), scene.py * (half_h - reach)
    c, s = math.cos(scene.angle), math.sin(scene.angle)  # python floats keep the arrays float32
    dx, dy = x - cx, y - cy
    u, v = c * dx + s * dy, -s * dx + c * dy
    r, k = scene.radius, scene.label
    if k == 0:  # disc
        return np.hypot(u, v) - r
    if k == 1:  # ellipse, semi-axes r and r/e (first-order distance: gradient-normalised implicit function)
        e = scene.shape_param
        f = np.hypot(u / r, v * e / r)
        grad = np.hypot(u / r**2, v * e**2 / r**2) / np.maximum(f, 1e-9)
        return (f - 1.0) / np.maximum(grad, 1e-9)
    if k == 2:  # square inscribed in the bounding circle
        return _box(u, v, r / math.sqrt(2), r / math.sqrt(2))
    if k == 3:  # rectangle with side ratio e, inscribed
        e = scene.shape_param
        a = r / math.sqrt(1 + 1 / e**2)
        return _box(u, v, a, a / e)
    if k == 4:
        return _triangle(u, v, r)
    if k == 5:  # ring: annulus between shape_param·r and r
        inner = scene.shape_param * r
        return np.abs(np.hypot(u, v) - (r + inner) / 2) - (r - inner) / 2
    if k == 6:  # cross: union of two bars of half-width shape_param·r whose corners touch the bounding circle
        w = scene.shape_param * r
        half_len = r * math.sqrt(1 - scene.shape_param**2)
        return np.minimum(_box(u, v, half_len, w), _box(u, v, w, half_len))
    if k == 7:
        return _star(u, v, r)
    if k == 8:  # frame: square minus a centred square
        a = r / math.sqrt(2)
        return np.maximum(_box(u, v, a, a), -_box(u, v, scene.shape_param * a, scene.shape_param * a))
    if k == 9:  # half-disc: the bounding disc cut along a diameter
        return np.maximum(np.hypot(u, v) - r, -v)
    raise ValueError(f"label {k} is not a class (0..{NUM_CLASSES - 1})")


def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in shorter-side units, origin at the image centre: (x, y), each [height, width]."""
    if height < 1 or width < 1:
        raise ValueError(f"cannot render a {height}×{width} image")
    unit = min(height, width)
    y = ((np.arange(height, dtype=np.float32) + 0.5 - height / 2) / unit)[:, None]
    x = ((np.arange(width, dtype=np.float32) + 0.5 - width / 2) / unit)[None, :]
    return tuple(np.broadcast_arrays(x, y))


def coverage(scene: Scene, height: int, width: int) -> np.ndarray:
    """[height, width] float32 in [0, 1]: how much of each pixel the object covers (1-pixel anti-aliased edge)."""
    x, y = _pixel_grid(height, width)
    sd = _signed_distance(scene, x, y, width / height)
    return np.clip(0.5 - sd * min(height, width), 0.0, 1.0).astype(np.float32)


def render(scene: Scene, height: int, width: int) -> np.ndarray:
    """[3, height, width] float32 in [0, 1]: the scene at this resolution (pixel aspect ratio 1)."""
    cover = coverage(scene, height, width)
    x, y = _pixel_grid(height, width)
    ramp = math.cos(scene.ramp_angle) * x + math.sin(scene.ramp_angle) * y
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-9)
    bg0, bg1, fg = (np.asarray(c, dtype=np.float32)[:, None, None] for c in (scene.bg0, scene.bg1, scene.fg))
    img = bg0 + (bg1 - bg0) * ramp  # background ramp
    img += (fg - img) * cover  # object over it
    # uniform pixel noise with standard deviation NOISE_STD (cheaper to draw than Gaussian noise)
    noise = np.random.default_rng(scene.noise_seed).random(img.shape, dtype=np.float32)
    img += (noise - 0.5) * (NOISE_STD * math.sqrt(12))
    return np.clip(img, 0.0, 1.0, out=img)


def normalise(images: np.ndarray) -> np.ndarray:
    """[N, 3, H, W] in [0, 1] -> ImageNet-normalised float32 (what the models and the parity inputs use)."""
    return ((images - IMAGENET_MEAN[None, :, None, None]) / IMAGENET_STD[None, :, None, None]).astype(np.float32)


def render_batch(scenes: list[Scene], height: int, width: int) -> np.ndarray:
    """[N, 3, height, width] float32, ImageNet-normalised."""
    return normalise(np.stack([render(s, height, width) for s in scenes]))


def draw_scenes(rng: np.random.Generator, n: int) -> list[Scene]:
    """``n`` scenes (one training step). Labels are a shuffled cycle over the classes, so even a small batch
    is balanced up to rounding."""
    labels = rng.permutation(np.resize(np.arange(NUM_CLASSES), n))
    return [sample_scene(rng, label) for label in labels]


def heldout_scenes(n: int, start: int = 0) -> list[Scene]:
    """Held-out scenes ``start .. start+n-1``: scene i has label i % 10 and its own seed (HELDOUT, i), so a
    slice of the set is the same scenes whatever n is, and the same scenes are rendered at every resolution."""
    return [sample_scene(scene_rng(SceneStream.HELDOUT, i), i % NUM_CLASSES) for i in range(start, start + n)]


def labels_of(scenes: list[Scene]) -> np.ndarray:
    return np.array([s.label for s in scenes], dtype=np.int64)
