import pytest

from resvit_export.errors import UsageError
from resvit_export.models import SizeRule
from resvit_export.profiles import BatchRange, parse_profile
from resvit_export.validate.matrix import Case, parse_resolutions, resolution_matrix

RULE = SizeRule(min_side=32, max_side=4096, patch_size=16)


def _sizes(cases, batch=None):
    return {(c.h, c.w) for c in cases if batch is None or c.batch == batch}


def test_square_profile_covers_edges_aspects_offgrid_and_batch():
    cases = resolution_matrix(parse_profile("224-1792"), RULE)
    sizes = _sizes(cases)
    opt = parse_profile("224-1792").resolved_opt(16)
    assert {(224, 224), (1792, 1792), opt} <= sizes
    assert {(240, 240), (1776, 1776)} <= sizes  # each edge one patch inside
    assert {(224, 1792), (1792, 224)} <= sizes  # extreme aspect ratios, both orientations
    assert any(h % 16 and w % 16 for h, w in sizes)  # sides off the patch grid
    assert all(224 <= h <= 1792 and 224 <= w <= 1792 for h, w in sizes)
    assert {c.batch for c in cases} == {1, 2}  # fixed batch 1 -> batch 2 is added
    assert max(c.h * c.w for c in cases if c.batch == 2) <= 1.25 * max(opt[0] * opt[1], 224 * 1792)  # off the max end
    kinds = {c.kind for c in cases}
    assert {"min", "max", "opt", "edge", "aspect", "nonsquare", "offgrid"} <= kinds
    # deduplicated, deterministic, sorted by tokens
    keys = [(c.batch, c.h, c.w) for c in cases]
    assert len(keys) == len(set(keys))
    assert cases == resolution_matrix(parse_profile("224-1792"), RULE)
    toks = [c.tokens(16) for c in cases]
    assert toks == sorted(toks)
    assert all(c.name == f"{c.kind}-{c.h}x{c.w}-b{c.batch}" for c in cases)


def test_non_square_profile_and_batch_range():
    prof = parse_profile("224x320-512x1024", batch=BatchRange(1, 1, 8))
    cases = resolution_matrix(prof, RULE)
    sizes = _sizes(cases)
    assert {(224, 320), (512, 1024), (224, 1024), (512, 320)} <= sizes
    assert all(prof.contains(c.h, c.w) for c in cases)
    assert {c.batch for c in cases} == {1, 8}
    assert {c.batch for c in resolution_matrix(prof, RULE, batch_sizes=[3, 5])} == {1, 3, 5}


def test_degenerate_profile_min_equals_max():
    cases = resolution_matrix(parse_profile("384-384"), RULE)
    assert [(c.kind, c.batch, c.h, c.w) for c in cases] == [("min", 1, 384, 384), ("min", 2, 384, 384)]


def test_user_extras_are_added_and_checked():
    prof = parse_profile("224-1024")
    cases = resolution_matrix(prof, RULE, extra="320x1024,301")
    assert Case("user-320x1024-b1", 1, 320, 1024, "user") in cases
    assert any(c.h == 301 and c.w == 301 for c in cases)
    assert resolution_matrix(prof, RULE, extra=[(320, 1024)]) == resolution_matrix(prof, RULE, extra="320x1024")
    with pytest.raises(UsageError, match="outside the profile"):
        resolution_matrix(prof, RULE, extra="2048x224")
    with pytest.raises(UsageError, match="minimum side of 32"):
        resolution_matrix(prof, SizeRule(32, 4096, 16), extra="24x300")
    with pytest.raises(UsageError, match="HxW"):
        parse_resolutions("320by1024")
    assert parse_resolutions(None) == [] and parse_resolutions("97x301") == [(97, 301)]


def test_profile_below_model_minimum_is_rejected():
    with pytest.raises(UsageError, match="minimum side"):
        resolution_matrix(parse_profile("16-256"), RULE)


def test_several_profiles_union():
    a, b = parse_profile("224-448"), parse_profile("512-1024")
    cases = resolution_matrix([a, b], RULE, extra="1000x600")
    assert {(224, 224), (448, 448), (512, 512), (1024, 1024), (1000, 600)} <= _sizes(cases)
    with pytest.raises(UsageError, match="outside"):
        resolution_matrix([a, b], RULE, extra="480x480")  # between the two profiles


def test_same_grid_cases_merge_into_an_off_grid_case_never_dropping_corners():
    from resvit_export.validate.matrix import merge_same_grid

    cases = resolution_matrix(parse_profile("224-1792"), RULE)
    kept, merged = merge_same_grid(cases, 16, "proof text")
    # 1776x1776 and 1791x1783 both run the 111x111 grid at batch 1: the aligned edge case goes
    assert [(m.case.name, m.into) for m in merged] == [("edge-1776x1776-b1", "offgrid-1791x1783-b1")]
    assert "111x111 token grid" in merged[0].reason and merged[0].reason.endswith("proof text")
    # min 224x224 shares its 14x14 grid with offgrid 225x239 but is a profile corner: both stay
    names = {c.name for c in kept}
    assert {"min-224x224-b1", "offgrid-225x239-b1", "min-224x224-b2", "offgrid-225x239-b2"} <= names
    assert [c for c in cases if c.name in names] == kept  # order kept
    assert len(kept) + len(merged) == len(cases)


def test_a_user_size_on_a_shared_grid_covers_the_others():
    from resvit_export.validate.matrix import merge_same_grid

    cases = resolution_matrix(parse_profile("224-1792"), RULE, extra="1785x1780")
    kept, merged = merge_same_grid(cases, 16, "p")
    # the user's own off-grid size checks the floor rule already, so neither matrix case is needed
    assert {(m.case.name, m.into) for m in merged} == {("edge-1776x1776-b1", "user-1785x1780-b1"),
                                                       ("offgrid-1791x1783-b1", "user-1785x1780-b1")}
    assert "user-1785x1780-b1" in {c.name for c in kept}
