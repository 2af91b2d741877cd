"""Memory estimates: N^2 growth for token-global families, flat backbones for ViTAR/RIViT, devices, sizes."""

import pytest

from resvit_export.errors import UsageError
from resvit_export.trt.devices import DEVICE_PRESETS, format_bytes, get_device, parse_memory_size
from resvit_export.trt.memory import ModelSpec, estimate_memory

DEIT = ModelSpec("deit", 384, 12, 6)
VITAR = ModelSpec("vitar", 384, 12, 6, cls_tokens=0, grid_cap=14)
RIVIT = ModelSpec("rivit", 128, 6, 3, head_dim=64, cls_tokens=0, fixed_grid=16, stem_channels=16)


@pytest.mark.parametrize("family", ["deit", "resformer", "navit"])
def test_token_global_families_grow_quadratically(family):
    spec = ModelSpec(family, 384, 12, 6)
    a, b = estimate_memory(spec, 1, 896, 896), estimate_memory(spec, 1, 1792, 1792)
    # 4x the tokens -> ~16x the attention scores (exactly (12545/3137)^2 for the N^2 term)
    assert b.attention_scores_bytes / a.attention_scores_bytes == pytest.approx((12545 / 3137) ** 2)
    assert b.backbone_bytes / a.backbone_bytes > 14
    assert b.activation_bytes / a.activation_bytes > 14


def test_fused_mha_removes_the_quadratic_term():
    a, b = (estimate_memory(DEIT, 1, s, s, fused_mha=True) for s in (896, 1792))
    assert b.attention_scores_bytes == 0
    assert b.backbone_bytes / a.backbone_bytes == pytest.approx(4, rel=0.01)  # linear in tokens


@pytest.mark.parametrize("spec,tokens", [(VITAR, 196), (RIVIT, 256)])
def test_merging_and_fixed_grid_backbones_stay_flat(spec, tokens):
    sizes = [448, 896, 1792]
    ests = [estimate_memory(spec, 1, s, s) for s in sizes]
    assert {e.backbone_tokens for e in ests} == {tokens}
    assert ests[0].backbone_bytes == ests[1].backbone_bytes == ests[2].backbone_bytes
    # only the stem grows, linearly with pixels (4x pixels -> 4x), never like N^2
    assert ests[2].stem_bytes / ests[1].stem_bytes == pytest.approx(4, rel=0.01)
    deit_ratio = (estimate_memory(DEIT, 1, 1792, 1792).activation_bytes
                  / estimate_memory(DEIT, 1, 448, 448).activation_bytes)
    own_ratio = ests[2].activation_bytes / ests[0].activation_bytes
    assert own_ratio <= 16.5 < deit_ratio / 5


def test_precision_batch_and_totals():
    e32, e16 = estimate_memory(DEIT, 2, 512, 512, "fp32"), estimate_memory(DEIT, 2, 512, 512, "fp16")
    assert e32.backbone_bytes == 2 * e16.backbone_bytes
    assert e32.weights_bytes == 2 * e16.weights_bytes == 4 * estimate_memory(DEIT, 2, 512, 512, "int8").weights_bytes
    e1 = estimate_memory(DEIT, 1, 512, 512)
    assert e16.backbone_bytes == 2 * e1.backbone_bytes
    assert e16.total_bytes == e16.activation_bytes + e16.weights_bytes + e16.overhead_bytes
    assert set(e16.to_dict()) >= {"total_bytes", "activation_bytes", "attention_scores_bytes"}
    with pytest.raises(UsageError):
        estimate_memory(DEIT, 0, 512, 512)
    with pytest.raises(UsageError):
        estimate_memory(DEIT, 1, 512, 512, "bf16")


def test_model_spec_from_registered_models():
    from resvit_export.models import create_model

    for name, family, flat in (("deit_test", "deit", False), ("resformer_test", "resformer", False),
                               ("navit_test", "navit", False), ("vitar_test", "vitar", True),
                               ("rivit_test", "rivit", True)):
        spec = ModelSpec.from_model(create_model(name))
        assert spec.family == family and spec.name == name
        assert spec.backbone_is_flat == flat
        assert spec.patch_size >= 8  # rivit's patch-1 size rule bands on a nominal 16 px patch
    with pytest.raises(UsageError, match="not a torch.nn.Module"):
        ModelSpec.from_model(object())


def test_backbone_tokens_follow_the_model_not_a_family_table():
    """Token counts per axis, off-square included: ViTAR caps each axis at G, not the product."""
    from resvit_export.models import create_model

    vitar = ModelSpec.from_model(create_model("vitar_test"))
    assert vitar.backbone_tokens(32, 1792) == 2 * 14  # 2x112 patches merge to 2x14, not min(224, 196)
    assert vitar.backbone_tokens(1792, 1792) == 196
    assert estimate_memory(vitar, 1, 32, 1792).backbone_tokens == 28
    deit = ModelSpec.from_model(create_model("deit_test"))
    assert deit.backbone_tokens(97, 301) == 6 * 18 + 1  # floor rule + class token
    rivit = ModelSpec.from_model(create_model("rivit_test"))
    assert rivit.backbone_tokens(97, 301) == rivit.backbone_tokens(4096, 32) == 256


def test_device_presets_and_budget():
    assert set(DEVICE_PRESETS) == {"orin-nano", "orin-nx-16", "agx-orin-32", "agx-orin-64", "thor"}
    nano = get_device("orin-nano")
    assert nano.budget_bytes == 6 << 30 and nano.sm == "sm_87" and nano.dla_cores == 0
    assert get_device("THOR").memory_bytes == 128 << 30 and get_device("thor").dla_cores == 0
    with pytest.raises(UsageError, match="orin-nano"):
        get_device("orin-mega")


@pytest.mark.parametrize("text,value", [("6G", 6 << 30), ("6GiB", 6 << 30), ("6gb", 6 << 30), ("512M", 512 << 20),
                                        ("1.5G", 3 << 29), ("1048576", 1 << 20), (4096, 4096)])
def test_parse_memory_size(text, value):
    assert parse_memory_size(text) == value


@pytest.mark.parametrize("bad", ["", "six", "6X", "-1G", "0", 0])
def test_parse_memory_size_rejects(bad):
    with pytest.raises(UsageError):
        parse_memory_size(bad)


def test_format_bytes():
    assert format_bytes(6 << 30) == "6.00 GiB" and format_bytes(512) == "512 B"
