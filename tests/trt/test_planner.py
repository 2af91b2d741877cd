"""Profile planner: bands, opt points, degenerate/invalid ranges, non-square ranges, device warnings."""

import json

import pytest

from resvit_export.errors import InputSizeError, UsageError
from resvit_export.profiles import BatchRange, parse_batch, parse_profile
from resvit_export.trt.memory import ModelSpec
from resvit_export.trt.planner import EnginePlan, band_token_bounds, format_plan, plan_engine

DEIT_S = ModelSpec("deit", 384, 12, 6, name="deit_s")
VITAR_S = ModelSpec("vitar", 384, 12, 6, cls_tokens=0, grid_cap=14, name="vitar_s")


def plan(text, spec=DEIT_S, **kw):
    return plan_engine([parse_profile(text)], spec, **kw)


def maxes(p):
    return [pp.max for pp in p.profiles]


def test_default_range_splits_into_three_token_bands():
    p = plan("224-1792")
    assert maxes(p) == [(512, 512), (1024, 1024), (1792, 1792)]
    assert [pp.tokens for pp in p.profiles] == [(196, 1024), (1024, 4096), (4096, 12544)]
    assert [pp.opt for pp in p.profiles] == [(336, 336), (720, 720), (1360, 1360)]
    # nested layout: every band starts at the range's min, so every HxW of the box is in some profile
    assert all(pp.min == (224, 224) for pp in p.profiles)
    assert [pp.index for pp in p.profiles] == [0, 1, 2]


def test_disjoint_layout_and_its_coverage_warning():
    p = plan("224-1792", layout="disjoint")
    assert [pp.min for pp in p.profiles] == [(224, 224), (512, 512), (1024, 1024)]
    assert any("disjoint" in w for w in p.warnings)


@pytest.mark.parametrize("text,expected", [
    ("224-512", [(512, 512)]),                     # one band (ratio 5.2)
    ("224-600", [(600, 600)]),                     # the 512-600 sliver (1.4x) is merged
    ("224-1100", [(512, 512), (1100, 1100)]),      # 1024-1100 sliver merged into the previous band
    ("512-1024", [(1024, 1024)]),
    ("224-4096", [(512, 512), (1024, 1024), (2048, 2048), (4096, 4096)]),
])
def test_band_cuts_and_merging(text, expected):
    assert maxes(plan(text)) == expected


def test_band_token_bounds_rule():
    assert band_token_bounds(196, 12544) == [(196, 1024), (1024, 4096), (4096, 12544)]
    assert band_token_bounds(196, 1369) == [(196, 1369)]
    assert band_token_bounds(784, 784) == [(784, 784)]
    with pytest.raises(UsageError):
        band_token_bounds(10, 5)


def test_degenerate_range_is_one_static_profile():
    p = plan("448-448", batch=BatchRange(2, 2, 2))
    assert len(p.profiles) == 1
    pp = p.profiles[0]
    assert pp.min == pp.opt == pp.max == (448, 448) and pp.static


def test_non_square_range_cuts_on_the_diagonal():
    p = plan("224x320-1792x1024")
    assert maxes(p) == [(512, 512), (1792, 1024)]  # 4096-7168 tokens (1.75x) merged into the last band
    assert p.profiles[0].min == (224, 320) and p.profiles[-1].max == (1792, 1024)
    for pp in p.profiles:
        assert all(lo <= o <= hi for lo, o, hi in zip(pp.min, pp.opt, pp.max))


def test_user_opt_overrides_the_tightest_band_containing_it():
    p = plan("224-1792@800")
    assert [pp.opt for pp in p.profiles] == [(336, 336), (800, 800), (1360, 1360)]
    p = plan("224-1792@400x300")
    assert p.profiles[0].opt == (400, 300)


def test_trtexec_form_profile_is_taken_verbatim_with_its_batch_and_name():
    p = plan_engine([parse_profile("x:1x3x224x224,x:2x3x512x512,x:4x3x1792x1792")], DEIT_S,
                    batch=BatchRange(1, 1, 8))
    assert len(p.profiles) == 1 and p.input_name == "x"
    pp = p.profiles[0]
    assert pp.shapes() == {"min": (1, 3, 224, 224), "opt": (2, 3, 512, 512), "max": (4, 3, 1792, 1792)}


def test_batch_from_option_and_multiple_profiles():
    p = plan_engine([parse_profile("224-448"), parse_profile("896-1792")], DEIT_S, batch=parse_batch("1-8@2"))
    assert [pp.source for pp in p.profiles] == ["224-448", "896-1792"]  # second range is one band (4x)
    assert all(pp.batch == BatchRange(1, 2, 8) for pp in p.profiles)
    assert p.profiles[1].shapes()["max"] == (8, 3, 1792, 1792)


def test_no_split_keeps_one_profile():
    p = plan("224-1792", split=False)
    assert len(p.profiles) == 1 and p.profiles[0].opt == (640, 640)


def test_invalid_inputs_are_refused():
    with pytest.raises(UsageError, match="no --profile"):
        plan_engine([], DEIT_S)
    with pytest.raises(UsageError, match="precision"):
        plan("224-512", precision="fp8")
    with pytest.raises(UsageError, match="layout"):
        plan("224-512", layout="diagonal")
    with pytest.raises(UsageError, match="inverted"):
        parse_profile("1792-224")
    with pytest.raises(UsageError, match="patch size"):
        plan("8-64")

    class Rule:  # a SizeRule-like object
        min_side, max_side = 32, 1024

    with pytest.raises(InputSizeError, match="maximum side"):
        plan("224-1792", size_rule=Rule())


def test_device_warning_names_concrete_fixes():
    p = plan("224-1792", batch=parse_batch("1-8@1"), device="orin-nano")
    assert [pp.fits for pp in p.profiles] == [True, True, False]
    assert len(p.warnings) == 1
    w = p.warnings[0]
    assert "profile 2" in w and "Jetson Orin Nano 8GB" in w and "6.00 GiB" in w
    assert "lower the max to ~" in w and "narrow the band" in w and "reduce --batch max to" in w
    # the same plan fits an AGX Orin 64GB except the 1792/batch-8 band; with no device there is no verdict
    assert plan("224-1792").profiles[0].fits is None and not plan("224-1792").warnings


def test_memory_budget_overrides_device():
    p = plan("224-1024", device="thor", memory_budget=512 << 20)
    assert p.budget_bytes == 512 << 20 and p.warnings


def test_vitar_fits_where_deit_does_not():
    assert plan("224-1792", VITAR_S, batch=parse_batch("1-8@1"), device="orin-nano").warnings == []


def test_plan_json_round_trip():
    p = plan("224x320-1792x1024", batch=parse_batch("1-4@2"), device="agx-orin-32")
    d = json.loads(json.dumps(p.to_dict()))
    q = EnginePlan.from_dict(d)
    assert q.to_dict() == p.to_dict()
    assert d["assumptions"]["fused_mha"] is False and d["device"]["name"] == "agx-orin-32"
    assert any("profile 0" in line for line in format_plan(q))
    with pytest.raises(UsageError):
        EnginePlan.from_dict({"nope": 1})


def test_plan_profiles_reads_a_real_model():
    from resvit_export.models import create_model
    from resvit_export.trt.planner import plan_profiles

    m = create_model("deit_test")
    p = plan_profiles(m, [parse_profile("224-1024")], BatchRange(), "fp32", memory_budget="6G")
    assert p.model == "deit_test" and p.family == "deit" and p.budget_bytes == 6 << 30
    assert len(p.profiles) == 2
