"""Deterministic seeded inputs for the parity check: the numpy-only generator the bundle ships.

The generator lives in ``resvit_export/bundle/device/parity_inputs.py`` because the device regenerates the
same inputs from their recipe (kind, batch, H, W, seed) and checks them against the sha256 recorded here;
one module on both sides is what makes the arrays equal. It is exact by construction (integer random words
and IEEE basic float operations only): see that module's docstring. This module is its host-side name.
"""

from __future__ import annotations

from resvit_export.bundle.device.parity_inputs import (
    GENERATOR_VERSION,
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_KINDS,
    case_seed,
    gaussian,
    input_sha256,
    make_inputs,
    synthetic_images,
)

__all__ = ["GENERATOR_VERSION", "IMAGENET_MEAN", "IMAGENET_STD", "INPUT_KINDS", "gaussian", "synthetic_images",
           "make_inputs", "case_seed", "input_sha256"]
