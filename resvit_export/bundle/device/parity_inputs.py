"""Parity inputs that every machine regenerates bit for bit: numpy only, shipped to the device.

The workstation validates with these inputs and records a sha256 of each; the device (no torch) regenerates
them from (kind, batch, H, W, seed) and checks the hash before comparing its engine with PyTorch's outputs.
So the arrays must not depend on the CPU, the libm or the numpy version. They are exact by construction:

* randomness comes only from the PCG64 bit generator's raw 64-bit words (``BitGenerator.random_raw``; the
  bit stream is fixed for a seed, unlike ``Generator`` methods whose algorithms numpy may change, and unlike
  samplers such as ``standard_normal`` whose ziggurat tail calls exp/log);
* floats are made from those words with integer ops and IEEE basic operations only (+ - * / sqrt, min/max,
  floor, comparisons), each correctly rounded on every platform; no sin/cos/exp/log, no float sums whose
  order a SIMD width could change;
* every operand is float32 on purpose: numpy 1.x and 2.x promote float64 scalars differently.

The two kinds keep their character:

* ``gaussian``: i.i.d. pixels ~ N(0, 1) by the Irwin-Hall sum of twelve 16-bit uniforms (mean 0, variance
  1 - 2^-32, tails to +-6). Large activations everywhere.
* ``synthetic``: real-image-like pixels in [0, 1] (a colour ramp, a soft blob, hard-edged ellipses and
  rectangles, oriented periodic texture, mild noise), then ImageNet-normalised. Neighbouring pixels are
  strongly correlated as in photos.

Works with Python >= 3.8 and numpy >= 1.17 (JetPack 5/6 system packages).
"""

from __future__ import annotations

import hashlib
import zlib

import numpy as np

__all__ = ["GENERATOR_VERSION", "INPUT_KINDS", "IMAGENET_MEAN", "IMAGENET_STD", "case_seed", "gaussian",
           "synthetic_images", "make_inputs", "input_sha256"]

# Bump when any generated array changes: the reference set records it, the device refuses a mismatch.
GENERATOR_VERSION = 2
INPUT_KINDS = ("gaussian", "synthetic")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

_F = np.float32
_2_24 = _F(2.0 ** -24)
_2_16 = _F(2.0 ** -16)
_CHUNK = 1 << 18  # pixels per block of random words (6 MiB of words)


def case_seed(name: str, seed: int = 0) -> int:
    """A stable per-case seed (independent of case order and of PYTHONHASHSEED)."""
    return (zlib.crc32(name.encode()) ^ (seed * 0x9E3779B1)) & 0x7FFFFFFF


class _Bits:
    """Raw PCG64 words and the exact float32 uniforms made from them."""

    def __init__(self, seed: int):
        self._gen = np.random.PCG64(seed)

    def words(self, n: int) -> np.ndarray:
        return np.asarray(self._gen.random_raw(n), dtype=np.uint64)

    def uniform(self, n: int, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
        """n float32 in [lo, hi): the top 24 bits of a word, scaled by 2^-24 (exact), then lo + (hi-lo)*u."""
        u = (self.words(n) >> np.uint64(40)).astype(_F) * _2_24
        return _F(lo) + (_F(hi) - _F(lo)) * u

    def scalar(self, lo: float = 0.0, hi: float = 1.0) -> np.float32:
        return self.uniform(1, lo, hi)[0]

    def integer(self, lo: int, hi: int) -> int:
        """An int in [lo, hi) (modulo bias below 2^-50 for the small ranges used here)."""
        return lo + int(self.words(1)[0] >> np.uint64(11)) % (hi - lo)


def gaussian(n: int, h: int, w: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    """[n, channels, h, w] float32, i.i.d. Irwin-Hall(12) pixels: mean 0, standard deviation ~1."""
    count = n * channels * h * w
    bits = _Bits(seed)
    out = np.empty(count, dtype=_F)
    for start in range(0, count, _CHUNK):  # chunks keep the word buffers small; the stream is the same
        m = min(_CHUNK, count - start)
        # 3 words = twelve 16-bit uniforms per pixel, read little-endian whatever the host's byte order
        u16 = bits.words(3 * m).astype("<u8", copy=False).view("<u2").reshape(m, 12)
        total = u16[:, 0].astype(np.int32)
        for i in range(1, 12):
            total += u16[:, i]
        # 12 uniforms on {0..65535}: mean 12 * 65535 / 2, variance 65536^2 - 1; both steps below are exact
        out[start:start + m] = (total - 393210).astype(_F) * _2_16
    return out.reshape(n, channels, h, w)


def _one_image(bits: _Bits, h: int, w: int) -> np.ndarray:
    yy = ((np.arange(h, dtype=_F) + _F(0.5)) / _F(h))[:, None]  # pixel centres in (0, 1)
    xx = ((np.arange(w, dtype=_F) + _F(0.5)) / _F(w))[None, :]
    aspect = _F(w) / _F(h)
    # 1. background: a colour ramp along a random direction, plus a soft round blob 1 / (1 + r^2 / rho^2)
    dx, dy = bits.scalar(-1, 1), bits.scalar(-1, 1)
    ramp = dx * xx + dy * yy
    lo, hi = ramp.min(), ramp.max()
    ramp = (ramp - lo) / max(hi - lo, _F(1e-6))
    c0, c1 = bits.uniform(3)[:, None, None], bits.uniform(3)[:, None, None]
    img = c0 * (_F(1) - ramp) + c1 * ramp
    cy, cx, rho = bits.scalar(), bits.scalar(), bits.scalar(0.2, 0.6)
    blob = _F(1) / (_F(1) + ((yy - cy) * (yy - cy) + (xx - cx) * (xx - cx)) / (rho * rho))
    img = img + bits.uniform(3, -0.3, 0.3)[:, None, None] * blob
    # 2. hard-edged shapes (ellipses and rectangles), drawn only inside their bounding box
    for _ in range(bits.integer(3, 9)):
        colour = bits.uniform(3)[:, None, None]
        y0, x0 = bits.scalar(), bits.scalar()
        ry, rx = bits.scalar(0.05, 0.3), bits.scalar(0.05, 0.3) / np.sqrt(aspect)
        ellipse = bits.scalar() < _F(0.5)
        alpha = bits.scalar(0.6, 1.0)
        r0, r1 = _box(y0, ry, h)
        q0, q1 = _box(x0, rx, w)
        if r0 >= r1 or q0 >= q1:
            continue
        ty, tx = (yy[r0:r1] - y0) / ry, (xx[:, q0:q1] - x0) / rx
        mask = (ty * ty + tx * tx <= _F(1)) if ellipse else ((np.abs(ty) <= _F(1)) & (np.abs(tx) <= _F(1)))
        patch = img[:, r0:r1, q0:q1]
        img[:, r0:r1, q0:q1] = np.where(mask[None], (_F(1) - alpha) * patch + alpha * colour, patch)
    # 3. oriented texture: two gratings of a smoothed triangle wave (no sin), image-relative frequency
    for _ in range(2):
        gx, gy = bits.scalar(-1, 1), bits.scalar(-1, 1)
        norm = np.sqrt(gx * gx + gy * gy) + _F(1e-3)
        freq, amp = bits.scalar(3, 16), bits.scalar(0.01, 0.04)
        t = (freq / norm) * (gx * aspect * xx + gy * yy)
        tri = _F(2) * np.abs(t - np.floor(t + _F(0.5)))  # in [0, 1], period 1
        img = img + amp * (tri * tri * (_F(3) - _F(2) * tri) - _F(0.5))[None]
    # 4. mild sensor noise: uniform, +-0.006
    img = img + (bits.uniform(3 * h * w, -0.006, 0.006)).reshape(3, h, w)
    return np.clip(img, _F(0), _F(1))


def _box(centre: np.float32, radius: np.float32, size: int) -> tuple[int, int]:
    """Rows (or columns) whose centre can lie within ``radius`` of ``centre`` (a superset is fine: the
    mask decides; the box only saves work)."""
    lo = int(np.floor((centre - radius) * _F(size))) - 1
    hi = int(np.floor((centre + radius) * _F(size))) + 2
    return max(lo, 0), min(hi, size)


def synthetic_images(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """[n, 3, h, w] float32 real-image-like pixels, ImageNet-normalised (mean/std per channel)."""
    bits = _Bits(seed)
    batch = np.stack([_one_image(bits, h, w) for _ in range(n)])
    return (batch - IMAGENET_MEAN[None, :, None, None]) / IMAGENET_STD[None, :, None, None]


def make_inputs(kind: str, n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Dispatch on ``kind`` ('gaussian' or 'synthetic')."""
    if kind == "gaussian":
        return gaussian(n, h, w, seed)
    if kind == "synthetic":
        return synthetic_images(n, h, w, seed)
    raise ValueError(f"unknown input kind {kind!r}; use one of {INPUT_KINDS}")


def input_sha256(x: np.ndarray) -> str:
    """sha256 over the shape and the little-endian float32 bytes."""
    a = np.ascontiguousarray(x, dtype="<f4")
    return hashlib.sha256(("x".join(map(str, a.shape)) + ":").encode() + a.tobytes()).hexdigest()
