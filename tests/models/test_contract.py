"""The model contract (models/contract.py): every family offers the same pieces, configs refuse bad values."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resvit_export.errors import ConfigError, ModelContractError
from resvit_export.models import check_contract, create_model, fit_to_profiles, parse_overrides
from resvit_export.models.contract import DeploySpec, deploy_spec_of
from resvit_export.models.layers import grid_to_tokens, resample_pos_embed, tokens_to_grid
from resvit_export.profiles import parse_profile

TINY = ["deit_test", "resformer_test", "navit_test", "vitar_test", "rivit_test"]


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("override,field", [("depth=-3", "depth"), ("num_heads=0", "num_heads"), ("dim=0", "dim"),
                                            ("patch_size=0", "patch_size"), ("mlp_ratio=-1", "mlp_ratio"),
                                            ("min_side=0", "min_side"), ("num_classes=0", "num_classes")])
def test_bad_common_values_are_refused_in_one_line(name, override, field):
    with pytest.raises(ConfigError) as info:
        create_model(name, **parse_overrides([override]))
    msg = str(info.value)
    assert field in msg and "\n" not in msg and msg.startswith(f"invalid config for {name}:")


@pytest.mark.parametrize("name", TINY)
def test_side_order_and_patch_are_checked_for_every_family(name):
    with pytest.raises(ConfigError, match="max_side 40 must be >= min_side 64"):
        create_model(name, min_side=64, max_side=40)
    if name != "rivit_test":  # rivit pools the input: any side >= 1 px is a valid minimum
        with pytest.raises(ConfigError, match="at least one patch"):
            create_model(name, min_side=8)


def test_heads_must_divide_width_unless_the_family_sets_a_head_width():
    with pytest.raises(ConfigError, match="divisible by num_heads"):
        create_model("vitar_test", dim=30, num_heads=4)
    assert create_model("rivit_test", num_heads=3).blocks[0].attn.num_heads == 3  # head_dim 16, dim 32
    with pytest.raises(ConfigError, match="head_dim"):
        create_model("rivit_test", head_dim=0)


@pytest.mark.parametrize("name", TINY)
def test_every_family_splits_forward_into_features_and_head(name):
    model = create_model(name, seed=0)
    spec = deploy_spec_of(model)
    assert spec.family == name.split("_")[0] and spec.name == name
    x = torch.randn(2, 3, 97, 301, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        tokens = model.forward_features(x)
        logits = model(x)
        pooled = model.forward_head(tokens, pre_logits=True)
    # tokens [B, N, C]: N is the DeploySpec's backbone token count (the planner's N) at this size
    assert tokens.shape == (2, spec.backbone_tokens(97, 301), spec.dim)
    assert pooled.shape == (2, spec.dim)
    assert torch.equal(model.forward_head(tokens), logits)
    assert model.input_names == ("pixels",) and model.output_names == ("logits",)


def test_family_comes_from_the_registry_only():
    from resvit_export.models.deit import DeiT

    assert "family" not in DeiT.__dict__
    assert create_model("deit_test").family == "deit"


def test_contract_check_names_the_missing_piece():
    class Foreign(nn.Module):
        def forward(self, x):
            return x.mean((2, 3))

    with pytest.raises(ModelContractError, match=r"no `size_rule`.*min/max side"):
        check_contract(Foreign())
    Foreign.size_rule = create_model("deit_test").size_rule
    with pytest.raises(ModelContractError, match="no `forward_features`"):
        check_contract(Foreign())
    with pytest.raises(ModelContractError, match="not a torch.nn.Module"):
        check_contract(object())
    check_contract(create_model("navit_test"))  # every registered family passes


def test_deploy_spec_token_rules():
    deit = DeploySpec("x", 64, 2, 2)
    assert deit.backbone_tokens(224, 240) == 14 * 15 + 1 and not deit.backbone_is_flat
    capped = DeploySpec("x", 64, 2, 2, cls_tokens=0, grid_cap=14)
    assert capped.backbone_grid(1792, 100) == (14, 6) and capped.max_backbone_tokens == 196
    with pytest.raises(ModelContractError, match="both grid_cap and fixed_grid"):
        DeploySpec("x", 64, 2, 2, grid_cap=14, fixed_grid=16)


def test_fit_to_profiles_lowers_max_side_and_keeps_the_users_value():
    profiles = [parse_profile("224-512"), parse_profile("224x320-480x640")]
    assert fit_to_profiles("vitar_test", profiles, {}) == {"max_side": 640}
    assert fit_to_profiles("vitar_test", profiles, {"max_side": 4096}) == {"max_side": 4096}  # the user wins
    assert fit_to_profiles("vitar_test", [parse_profile("224-8192")], {}) == {"max_side": 4096}  # never raised
    assert fit_to_profiles("deit_test", [], {"depth": 1}) == {"depth": 1}
    # ViTAR's stage count follows the fitted max_side; the extra stages were exact identities
    full, fitted = create_model("vitar_test"), create_model("vitar_test", **fit_to_profiles("vitar_test", profiles, {}))
    assert (full.atm.stages, fitted.atm.stages) == (5, 2)
    x = torch.randn(1, 3, 640, 400, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(full(x), fitted(x))


def test_resample_pos_embed_is_interpolate_with_the_sizes_given():
    table = torch.randn(1, 8, 14, 14, generator=torch.Generator().manual_seed(0))
    out = resample_pos_embed(table, (20, 9), mode="bicubic", antialias=True)
    assert torch.equal(out, F.interpolate(table, size=(20, 9), mode="bicubic", align_corners=False, antialias=True))
    half = resample_pos_embed(table.half(), (7, 7), mode="bilinear")
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), resample_pos_embed(table, (7, 7), mode="bilinear"), atol=2e-3, rtol=0)


def test_token_layout_round_trip():
    nlc = torch.randn(1, 1 + 3 * 4, 8)
    prefix, grid = tokens_to_grid(nlc, (3, 4), num_prefix_tokens=1)
    assert grid.shape == (1, 8, 3, 4) and torch.equal(grid[0, :, 1, 2], nlc[0, 1 + 1 * 4 + 2])
    assert torch.equal(grid_to_tokens(grid, prefix), nlc)
    with pytest.raises(ValueError, match=r"not \[1, 1 \+ 4\*4, C\]"):
        tokens_to_grid(nlc, (4, 4))
