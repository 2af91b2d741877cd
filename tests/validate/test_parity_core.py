"""The device's numpy metrics compute exactly what the host's Polygraphy comparison computes."""

import numpy as np
import pytest

from resvit_export.bundle.device import parity_core as core
from resvit_export.validate.parity import CaseResult, compare_outputs, default_tolerances


def _pairs():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((3, 1000)).astype(np.float32)
    noisy = ref + (1e-3 * rng.standard_normal(ref.shape)).astype(np.float32)
    zeros = noisy.copy()
    zeros[0, :5] = 0.0  # Polygraphy's epsilon path for relative error
    zeros[1, 3] = ref[1, 3] = 0.0
    inf_ref, inf_got = ref.copy(), noisy.copy()
    inf_ref[2, 7] = inf_got[2, 7] = np.inf  # equal infinities compare equal
    nan = noisy.copy()
    nan[1, 9] = np.nan
    flip = ref.copy()
    flip[0, ref[0].argmin()] = ref[0].max() + 1
    vec = rng.standard_normal(17).astype(np.float32)  # a 1-D output (not a classification)
    return {"equal": (ref, ref.copy()), "noisy": (ref, noisy), "zeros": (ref, zeros), "inf": (inf_ref, inf_got),
            "nan": (ref, nan), "top1-flip": (ref, flip), "1-d": (vec, vec * np.float32(1.01)),
            "big": (ref, ref + np.float32(0.2)), "shape": (ref, ref[:2])}


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("case", list(_pairs()))
def test_numpy_backend_gives_polygraphy_numbers(precision, case):
    ref, got = _pairs()[case]
    tol = default_tolerances(precision)
    host = compare_outputs({"logits": ref}, {"logits": got}, tol)  # Polygraphy's comparators
    device = core.compare_outputs({"logits": ref}, {"logits": got}, tol)  # numpy only
    assert host.keys() == device.keys()
    for key in host:
        h, d = host[key], device[key]
        if isinstance(h, float) and np.isnan(h):
            assert np.isnan(d), key
        else:
            assert h == d, (key, h, d)  # bit-identical, not approximately equal


def test_the_statistics_themselves_match_and_gate():
    from resvit_export.validate.parity import _polygraphy_backend

    stats, cosine = _polygraphy_backend()
    for name, (ref, got) in _pairs().items():
        if ref.shape != got.shape:
            continue
        for atol, rtol in ((1e-4, 1e-3), (5e-2, 5e-2), (np.inf, np.inf), (0.0, 0.0)):
            assert core.numpy_stats(ref, got, atol, rtol) == pytest.approx(stats(ref, got, atol, rtol), nan_ok=True), name
        assert core.numpy_cosine(ref[0], got[0]) == pytest.approx(cosine(ref[0], got[0]), rel=0, abs=0, nan_ok=True)
    # the gates do gate: a 0.2 shift breaches fp32's atol, a NaN fails everything
    ref, got = _pairs()["big"]
    assert not core.numpy_stats(ref, got, 1e-4, 1e-3)["passed"] and core.numpy_stats(ref, got, 0.5, 0.0)["passed"]
    assert np.isnan(core.numpy_cosine(np.array([np.nan, 1.0], np.float32), np.array([1.0, 1.0], np.float32)))


def test_case_records_have_the_host_schema():
    import dataclasses

    assert tuple(f.name for f in dataclasses.fields(CaseResult)) == core.CASE_KEYS
