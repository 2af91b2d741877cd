"""The reference set writer: compact, stable across re-validation, refreshed when the outputs change."""

import json

import numpy as np

from resvit_export.bundle.device.reference_set import ReferenceSet
from resvit_export.validate.inputs import make_inputs
from resvit_export.validate.reference import ReferenceEntry, write_reference_set

TOL32 = {"atol": 1e-4, "rtol": 1e-3, "cos_min": 0.99999, "top1_min": 1.0}
TOL16 = {"atol": 5e-2, "rtol": 5e-2, "cos_min": 0.999, "top1_min": 0.9}


def _entries(shift=0.0):
    out = []
    for i, kind in enumerate(("gaussian", "synthetic")):
        x = make_inputs(kind, 2, 48, 64, 100 + i)
        out.append(ReferenceEntry("min-48x64-b2", "min", kind, 2, 48, 64, 12, 100 + i, x,
                                  [np.arange(10, dtype=np.float32).reshape(2, 5) + i + shift]))
    return out


def _write(tmp_path, entries, precision, tol):
    return write_reference_set(tmp_path, entries, model="m", profiles=["32-64"], input_name="pixels",
                               output_names=["logits"], seed=0, precision=precision, tolerances=tol)


def test_revalidating_keeps_the_files_and_collects_tolerances(tmp_path):
    info = _write(tmp_path, _entries(), "fp32", TOL32)
    assert [p.name for p in info.files] == ["reference.json", "reference.npz"]
    assert info.bytes < 10_000  # outputs and hashes only: the inputs are regenerated on the device
    npz = (tmp_path / "reference.npz").read_bytes()
    _write(tmp_path, _entries(), "fp16", TOL16)  # the build's second validate: same cases and outputs
    assert (tmp_path / "reference.npz").read_bytes() == npz
    meta = json.loads((tmp_path / "reference.json").read_text())
    assert meta["tolerances"] == {"fp32": TOL32, "fp16": TOL16}
    before = (tmp_path / "reference.json").read_bytes()
    _write(tmp_path, _entries(), "fp32", TOL32)  # a later `validate` of the same build changes nothing
    assert (tmp_path / "reference.json").read_bytes() == before
    # new outputs (other weights) start the set afresh: the old fp16 tolerances no longer describe it
    _write(tmp_path, _entries(shift=1.0), "fp32", TOL32)
    meta = json.loads((tmp_path / "reference.json").read_text())
    assert meta["tolerances"] == {"fp32": TOL32}
    ref = ReferenceSet(str(tmp_path / "reference.json"))
    assert ref.outputs(1)["logits"][0, 0] == 2.0 and ref.input(1).shape == (2, 3, 48, 64)
