"""ViTAR: merge rule, grid padding, FPE, eager behaviour over sizes, training, and one dynamic-H/W ONNX export."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from resvit_export.errors import InputSizeError
from resvit_export.models import create_model
from resvit_export.models.vitar import ViTAR, cell_index, merge_plan, merge_stage_count

G = 14

# Square inputs, patch 16: px -> merge iterations (research digest table; 224 = G×G needs none).
PLAN = {224: 0, 448: 1, 672: 2, 896: 2, 1120: 3, 1792: 3, 2240: 4, 4032: 5}
SIZES = [(224, 224), (448, 448), (1792, 1792), (320, 1024), (1024, 320), (232, 248), (97, 301)]


@pytest.fixture(scope="module")
def model() -> ViTAR:
    return create_model("vitar_test")


# ---------------------------------------------------------------------------------------------- merge rule
@pytest.mark.parametrize("px,iters", sorted(PLAN.items()))
def test_merge_plan_table(px, iters):
    plan = merge_plan(px // 16, px // 16, G)
    assert len(plan) - 1 == iters
    assert plan[0] == (px // 16, px // 16) and plan[-1] == (G, G)


def test_merge_plan_examples_and_small_sides():
    assert merge_plan(42, 42) == [(42, 42), (21, 21), (14, 14)]  # 21 is grid-padded to 28, then halved
    assert merge_plan(252, 252) == [(252, 252), (126, 126), (63, 63), (32, 32), (16, 16), (14, 14)]
    assert merge_plan(6, 18) == [(6, 18), (6, 14)]  # an axis below G is never merged
    assert merge_plan(2, 2) == [(2, 2)]
    assert merge_stage_count(4096 // 16) == 5


def test_closed_form_side_equals_iterated_rule(model):
    for s in range(1, 257):
        plan = merge_plan(s, s)
        sides = [p[0] for p in plan] + [plan[-1][0]] * 8
        for k in range(1, model.atm.stages + 1):
            assert model.atm.side_after(s, k) == sides[k], (s, k)


@pytest.mark.parametrize("hw", SIZES)
def test_eager_active_stages_follow_plan(model, hw):
    h, w = hw
    trace = model.merge_trace(torch.randn(1, 3, h, w))
    assert len(trace) == model.atm.stages == 5
    active = [(a, b) for a, b, on in trace if on]
    flags = [on for _, _, on in trace]
    assert flags == sorted(flags, reverse=True), "identity stages only after the merging ones"
    plan = merge_plan(h // 16, w // 16)
    assert active == plan[1:]
    assert (trace[-1][0], trace[-1][1]) == plan[-1]


def test_identity_stage_is_exact(model):
    x = torch.randn(2, 14, 14, model.cfg.dim)
    with torch.no_grad():
        y, gate = model.atm.stage(x, 1, 14, 14)
        small, gate_small = model.atm.stage(torch.randn(1, 6, 9, model.cfg.dim), 3, 6, 9)
    assert gate.item() == 0 and torch.equal(y, x)
    assert gate_small.item() == 0 and small.shape == (1, 6, 9, model.cfg.dim)


@pytest.mark.parametrize("s", list(range(15, 28)) + [29, 35, 63, 127, 253])
def test_grid_padding_keeps_a_real_token_in_every_cell(s):
    s_out = min(s, max(G, (s + 1) // 2))
    first, second, second_valid = cell_index(s, s_out)
    assert len(first) == s_out
    p = 2 * s_out - s
    assert p >= 0 and int((~second_valid).sum()) == p
    assert torch.all(~second_valid[:p]) and torch.all(second_valid[p:])  # pads interleaved in the first p cells
    real = torch.cat([first, second[second_valid]])
    assert sorted(real.tolist()) == list(range(s)), "every real token lands in exactly one cell"
    assert torch.all(second[second_valid] == first[second_valid] + 1)  # a cell holds adjacent tokens
    assert torch.all((second >= 0) & (second < s))


def test_unmerged_axis_index_is_identity():
    first, _, second_valid = cell_index(9, 9)
    assert torch.equal(first, torch.arange(9)) and not second_valid.any()


# ---------------------------------------------------------------------------------------------- FPE
def test_fpe_eval_equals_reference_centre_sampling(model):
    fpe = model.fpe
    for gh, gw in [(14, 14), (28, 17), (6, 19), (2, 2), (112, 112)]:
        x = torch.zeros(1, model.cfg.dim, gh, gw)
        with torch.no_grad():
            eval_pe = fpe.eval()(x)
            sampled = fpe.sample(1, gh, gw, jitter=torch.zeros(1, gh, gw, 2))
        torch.testing.assert_close(eval_pe, sampled, atol=1e-5, rtol=0)


def test_fpe_training_jitters():
    m = create_model("vitar_test")
    fpe = m.fpe.train()
    x = torch.zeros(2, m.cfg.dim, 20, 30)
    a, b = fpe(x), fpe(x)
    ref = fpe.eval()(x)
    assert not torch.allclose(a, ref, atol=1e-6) and not torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a[0], a[1], atol=1e-6)  # jitter drawn per image


# ---------------------------------------------------------------------------------------------- eager model
@pytest.mark.parametrize("hw", SIZES)
def test_shapes_and_finite(model, hw):
    with torch.no_grad():
        y = model(torch.randn(1, 3, *hw))
    assert y.shape == (1, 10) and torch.isfinite(y).all()


@pytest.mark.parametrize("hw", [(448, 448), (232, 248), (97, 301)])
def test_batch_consistency(model, hw):
    x = torch.randn(2, 3, *hw)
    with torch.no_grad():
        batched = model(x)
        for i in range(2):
            torch.testing.assert_close(batched[i : i + 1], model(x[i : i + 1]), atol=1e-5, rtol=0)


def test_input_below_minimum_is_an_error(model):
    assert model.size_rule.min_side == 32
    with pytest.raises(InputSizeError, match="below this model's minimum"):
        model(torch.randn(1, 3, 16, 224))
    with pytest.raises(InputSizeError, match="below this model's minimum"):
        model(torch.randn(1, 3, 224, 31))
    model(torch.randn(1, 3, 32, 32))  # the minimum itself is accepted


def test_registered_variants_have_paper_widths():
    from resvit_export.models import get_entry

    s, b = get_entry("vitar_s").config, get_entry("vitar_b").config
    assert (s.dim, s.num_heads, s.depth, s.grid) == (384, 6, 12, 14)
    assert (b.dim, b.num_heads, b.depth, b.grid) == (768, 12, 12, 14)


def test_training_reduces_loss():
    torch.manual_seed(0)
    m = create_model("vitar_test").train()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3, weight_decay=0.0)
    batches = [(torch.randn(2, 3, 224, 224), torch.tensor([1, 7])), (torch.randn(2, 3, 448, 448), torch.tensor([3, 5]))]

    def total_loss():
        return sum(torch.nn.functional.cross_entropy(m(x), y) for x, y in batches)

    first = total_loss()
    for _ in range(8):
        opt.zero_grad()
        loss = total_loss()
        loss.backward()
        opt.step()
    assert m.atm.block.q.weight.grad is not None and m.fpe.table.grad is not None
    assert total_loss().item() < 0.8 * first.item()


# ---------------------------------------------------------------------------------------------- ONNX export
@pytest.fixture(scope="module")
def onnx_session(model, tmp_path_factory):
    ort = pytest.importorskip("onnxruntime")
    from torch.export import Dim

    dyn = {"x": {0: Dim("batch", min=1, max=8), 2: Dim("height", min=32, max=4096), 3: Dim("width", min=32, max=4096)}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (torch.randn(2, 3, 448, 448),), dynamo=True, opset_version=18,
                                    dynamic_shapes=dyn, verbose=False)
    ranges = sorted((int(r.lower), int(r.upper)) for r in program.exported_program.range_constraints.values())
    path = tmp_path_factory.mktemp("vitar") / "vitar_test.onnx"
    program.save(str(path))
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), ranges


def test_export_keeps_requested_ranges(onnx_session):
    _, ranges = onnx_session
    assert ranges == [(1, 8), (32, 4096), (32, 4096)]


@pytest.mark.parametrize("hw", [(224, 224), (448, 448), (1120, 1120), (1792, 1792), (320, 1024), (232, 248), (97, 301)])
def test_onnx_matches_eager(model, onnx_session, hw):
    sess, _ = onnx_session
    x = torch.randn(1 if hw[0] >= 1792 else 2, 3, *hw)
    with torch.no_grad():
        ref = model(x).numpy()
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert out.shape == ref.shape
    assert float(np.abs(out - ref).max()) < 1e-4
