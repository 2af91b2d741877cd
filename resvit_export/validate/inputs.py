"""Deterministic seeded inputs for the parity check (numpy only).

Two kinds, because they stress different things:

* ``gaussian``: i.i.d. N(0, 1) pixels. Large activations everywhere; what most exporters test with.
* ``synthetic_images``: real-image-like content (smooth colour gradients, random shapes with hard edges,
  oriented texture, mild sensor noise) in [0, 1], then ImageNet-normalised. Neighbouring pixels are strongly
  correlated as in photos, so attention patterns and activation ranges look like deployment data.

Same (n, h, w, seed) -> bit-identical arrays on every platform (numpy's PCG64 ``default_rng``).
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "gaussian", "synthetic_images", "make_inputs", "case_seed"]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
INPUT_KINDS = ("gaussian", "synthetic")


def case_seed(name: str, seed: int = 0) -> int:
    """A stable per-case seed (independent of case order and of PYTHONHASHSEED)."""
    return (zlib.crc32(name.encode()) ^ (seed * 0x9E3779B1)) & 0x7FFFFFFF


def gaussian(n: int, h: int, w: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    """[n, channels, h, w] float32 standard-normal pixels."""
    return np.random.default_rng(seed).standard_normal((n, channels, h, w), dtype=np.float32)


def _one_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.meshgrid(np.linspace(0.0, 1.0, h, dtype=np.float32), np.linspace(0.0, 1.0, w, dtype=np.float32),
                         indexing="ij")
    # 1. smooth background: a linear colour ramp in a random direction plus a soft radial blob
    theta = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(theta) * xx + np.sin(theta) * yy
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    c0, c1 = rng.uniform(0.0, 1.0, 3), rng.uniform(0.0, 1.0, 3)
    img = c0[:, None, None] * (1 - ramp) + c1[:, None, None] * ramp
    cy, cx, rad = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.2, 0.6)
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rad**2))
    img = img + (rng.uniform(-0.3, 0.3, 3)[:, None, None] * blob)
    # 2. random shapes with hard edges (ellipses and rectangles); sizes are fractions of the image
    aspect = w / h
    for _ in range(int(rng.integers(3, 9))):
        colour = rng.uniform(0.0, 1.0, 3)[:, None, None]
        y0, x0 = rng.uniform(0, 1), rng.uniform(0, 1)
        ry, rx = rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.3) / aspect ** 0.5
        if rng.uniform() < 0.5:
            mask = ((yy - y0) / ry) ** 2 + ((xx - x0) / rx) ** 2 <= 1.0
        else:
            mask = (np.abs(yy - y0) <= ry) & (np.abs(xx - x0) <= rx)
        alpha = rng.uniform(0.6, 1.0)
        img = np.where(mask[None], (1 - alpha) * img + alpha * colour, img)
    # 3. oriented texture (a few gratings at image-relative frequencies) and mild noise
    for _ in range(2):
        phi, freq = rng.uniform(0, np.pi), rng.uniform(3, 16)
        amp = rng.uniform(0.01, 0.04)
        img = img + amp * np.sin(2 * np.pi * freq * (np.cos(phi) * xx * aspect + np.sin(phi) * yy))[None]
    img = img + rng.normal(0.0, 0.004, img.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def synthetic_images(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """[n, 3, h, w] float32 real-image-like pixels, ImageNet-normalised (mean/std per channel)."""
    rng = np.random.default_rng(seed)
    batch = np.stack([_one_image(rng, h, w) for _ in range(n)])
    return ((batch - IMAGENET_MEAN[None, :, None, None]) / IMAGENET_STD[None, :, None, None]).astype(np.float32)


def make_inputs(kind: str, n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Dispatch on ``kind`` ('gaussian' or 'synthetic')."""
    if kind == "gaussian":
        return gaussian(n, h, w, seed)
    if kind == "synthetic":
        return synthetic_images(n, h, w, seed)
    raise ValueError(f"unknown input kind {kind!r}; use one of {INPUT_KINDS}")
