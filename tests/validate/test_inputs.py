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


# Pinned arrays: a change here changes every recorded reference set, so it must come with a
# GENERATOR_VERSION bump (the device refuses a reference made by another version).
GOLDEN = {
    ("gaussian", 1, 224, 224, 7): "382a50b2fd7b1164947f573f7072159990fbce3fb5fcbe0b6b21721e1c92dd95",
    ("synthetic", 2, 97, 301, 11): "b910e707864756e5c743fb8786c060d3bae5a50d79c4bd8bf72ef7c010c0fc4c",
    ("synthetic", 1, 1792, 224, 3): "cf852e222d305412fc7f541ea56e9f0851f441c2195ca8f8bcb91f787d0e7786",
}


def test_generator_output_is_pinned():
    from resvit_export.validate.inputs import GENERATOR_VERSION, input_sha256, make_inputs

    assert GENERATOR_VERSION == 2
    for recipe, digest in GOLDEN.items():
        assert input_sha256(make_inputs(*recipe)) == digest, recipe


def test_gaussian_kind_is_standard_normal_like():
    x = gaussian(4, 256, 256, seed=1).astype(np.float64).ravel()
    assert abs(x.mean()) < 0.005 and abs(x.std() - 1) < 0.005
    assert abs(((x - x.mean()) ** 4).mean() / x.var() ** 2 - 2.9) < 0.03  # Irwin-Hall(12): kurtosis 3 - 0.1
    assert 4 < np.abs(x).max() <= 6  # tails well past 3 sigma, bounded by construction
    assert np.array_equal(x * 2 ** 16, np.round(x * 2 ** 16))  # a 2^-16 lattice: made from integers exactly


def test_generator_uses_only_exact_operations():
    """The module may call only numpy functions that are exact on every platform (no libm transcendental,
    no Generator sampler): this is what makes the device's regenerated inputs equal to the host's."""
    import ast
    from pathlib import Path

    import resvit_export.bundle.device.parity_inputs as mod

    allowed = {"arange", "array", "asarray", "empty", "floor", "abs", "sqrt", "where", "clip", "stack",
               "ascontiguousarray", "float32", "uint64", "int32", "ndarray", "PCG64", "random"}
    used = {node.attr for node in ast.walk(ast.parse(Path(mod.__file__).read_text()))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "np"}
    assert used <= allowed, used - allowed


def test_same_arrays_without_torch_from_the_shipped_file(tmp_path):
    """The device imports the file by itself (no resvit_export, no torch): it must give the same bytes."""
    import subprocess
    import sys
    from pathlib import Path

    import resvit_export.bundle.device.parity_inputs as mod

    code = ("import sys; sys.modules['torch'] = None; sys.path.insert(0, sys.argv[1]); import parity_inputs as p; "
            "print(p.input_sha256(p.make_inputs('synthetic', 2, 97, 301, 11)))")
    out = subprocess.run([sys.executable, "-c", code, str(Path(mod.__file__).parent)], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout.strip()
    assert out == GOLDEN[("synthetic", 2, 97, 301, 11)]
