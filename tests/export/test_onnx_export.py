"""export_onnx / export_packed_navit on every tiny *_test model: ORT CPU vs eager over the range."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from resvit_export.errors import RangeNarrowedError
from resvit_export.export import export_onnx, export_packed_navit, load_reference_model, write_export_record
from resvit_export.export.onnx_export import _example_hw, union_profile
from resvit_export.models import create_model, get_entry, list_models
from resvit_export.profiles import ResolutionProfile, parse_profile

ort = pytest.importorskip("onnxruntime")

TEST_MODELS = [n for n in list_models() if get_entry(n).test_variant]
# Models whose single-image graph the range check currently (rightly) rejects; strict xfail so a fix shows up.
KNOWN_NARROWING: dict[str, str] = {}  # name -> reason (navit_test was here until its patchify fix)
ATOL = 1e-4


def _session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _profile_for(model) -> ResolutionProfile:
    lo = max(64, model.size_rule.min_side)
    return parse_profile(f"{lo}-512")


@pytest.fixture(scope="module", params=TEST_MODELS)
def exported(request, tmp_path_factory):
    name = request.param
    # max_side=512 keeps graphs with a size-dependent stage count (ViTAR's K) small; the range is 64-512 anyway
    model = create_model(name, seed=0, max_side=512)
    profile = _profile_for(model)
    out = tmp_path_factory.mktemp(name) / "model.onnx"
    try:
        result = export_onnx(model, out, profile)
    except RangeNarrowedError as err:
        if name in KNOWN_NARROWING:
            pytest.xfail(f"{KNOWN_NARROWING[name]}: {err}")
        raise
    if name in KNOWN_NARROWING:
        pytest.fail(f"{name} now exports without narrowing; remove it from KNOWN_NARROWING")
    write_export_record(out.parent, result, model_name=name, overrides={"max_side": 512}, seed=0,
                        profiles=[profile], opset=18)
    return name, model, profile, result, _session(out)


def _sizes(profile):
    lo, hi = profile.min[0], profile.max[0]
    clip = lambda v: min(max(v, lo), hi)  # noqa: E731
    return [(lo, lo, 1), (hi, hi, 1), (clip(97), clip(301), 1), (clip(160), clip(112), 3)]


def test_ort_matches_eager_over_range(exported):
    name, model, profile, result, sess = exported
    gen = torch.Generator().manual_seed(1)
    for h, w, b in _sizes(profile):
        x = torch.randn(b, 3, h, w, generator=gen)
        with torch.no_grad():
            ref = model(x).numpy()
        got = sess.run(["logits"], {"pixels": x.numpy()})[0]
        assert got.shape == ref.shape, (name, h, w, b)
        np.testing.assert_allclose(got, ref, atol=ATOL, rtol=1e-4, err_msg=f"{name} at {b}x{h}x{w}")


def test_range_constraints_recorded_and_cover(exported):
    _, _, profile, result, _ = exported
    rc = result.range_constraints
    assert rc["height"][0] <= profile.min[0] and rc["height"][1] >= profile.max[0]
    assert rc["width"][0] <= profile.min[1] and rc["width"][1] >= profile.max[1]
    assert rc["batch"][0] <= 1 and rc["batch"][1] is None
    assert result.requested["height"] == [profile.min[0], profile.max[0]]


def test_onnx_inputs_symbolic_and_metadata(exported):
    name, model, profile, result, _ = exported
    proto = onnx.load(str(result.onnx_path))
    (inp,) = proto.graph.input
    assert inp.name == "pixels"
    dims = inp.type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
    assert dims[1].dim_value == 3
    (out,) = proto.graph.output
    assert out.name == "logits" and out.type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["resvit_export.model"] == name
    assert meta["resvit_export.family"] == get_entry(name).family
    assert meta["resvit_export.patch_size"] == str(model.size_rule.patch_size)
    assert meta["resvit_export.min_side"] == str(model.size_rule.min_side)
    assert meta["resvit_export.profile"] == str(profile)
    assert "resvit_export.version" in meta
    assert result.data_path is None and not result.onnx_path.with_name("model.onnx.data").exists()


def test_record_round_trip(exported):
    name, model, profile, result, sess = exported
    ref, rec = load_reference_model(result.onnx_path.parent)
    assert rec["model"] == name and rec["range_constraints"]["height"] == result.range_constraints["height"]
    assert rec["profiles"] == [profile.to_dict()] and rec["onnx_sha256"] == result.onnx_sha256
    x = torch.randn(2, 3, profile.min[0] + 16, profile.min[1] + 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        np.testing.assert_array_equal(ref(x).numpy(), model(x).numpy())
        np.testing.assert_allclose(sess.run(None, {"pixels": x.numpy()})[0], ref(x).numpy(), atol=ATOL, rtol=1e-4)


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    from resvit_export.models.navit import PackedNaViT

    model = PackedNaViT(create_model("navit_test", seed=0))
    out = tmp_path_factory.mktemp("packed") / "model.onnx"
    return model, export_packed_navit(model, out)


def test_packed_navit_matches_eager(packed):
    from resvit_export.models.navit import pack_images

    model, result = packed
    assert result.input_names == ["patches", "coords", "grid_hw", "image_ids", "image_valid"]
    assert result.range_constraints == {"seqs": [1, None], "tokens": [1, None], "images": [1, None]}
    assert set(result.assumptions) <= {"images != 1", "tokens != 1", "seqs != 1"}
    proto = onnx.load(str(result.onnx_path))
    dims = {vi.name: [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in proto.graph.input}
    assert dims["patches"][:2] == ["seqs", "tokens"] and dims["image_valid"] == ["seqs", "images"]
    sess = _session(result.onnx_path)
    gen = torch.Generator().manual_seed(3)
    cases = [
        [(48, 80), (32, 32), (96, 64), (64, 48), (33, 47)],  # several per sequence, odd sizes
        [(64, 64)],  # one sequence, one image (images == 1, the recorded != 1 assumption)
        [(16, 16), (16, 16)],  # one token per image
    ]
    for sizes in cases:
        batch = pack_images([torch.randn(3, h, w, generator=gen) for h, w in sizes], patch_size=16,
                            max_seq_len=max(24, max((h // 16) * (w // 16) for h, w in sizes)) if len(sizes) > 2 else None)
        with torch.no_grad():
            ref = model(*batch.inputs()).numpy()
        feeds = dict(zip(result.input_names, (t.numpy() for t in batch.inputs())))
        got = sess.run(["logits"], feeds)[0]
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=ATOL, rtol=1e-4, err_msg=str(sizes))


def test_union_profile_and_example_size():
    u = union_profile([parse_profile("224-1792"), parse_profile("160x192-640x900", None)])
    assert u.min == (160, 192) and u.max == (1792, 1792)
    h, w = _example_hw(parse_profile("64-512"), 16)
    assert 64 <= h <= 512 and 64 <= w <= 512 and h != w and h % 16 and w % 16
