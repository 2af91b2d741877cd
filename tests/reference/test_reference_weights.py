"""The committed reference weights: they load, they are what their records say, and they learned the task."""

from __future__ import annotations

import pytest
import torch

from resvit_export.io import sha256_file
from resvit_export.models import create_model, load_weights
from resvit_export.reference import checkpoints, evaluate
from resvit_export.reference.task import NUM_CLASSES

RUNS = checkpoints.RUNS
CHANCE = 1 / NUM_CLASSES


@pytest.fixture(scope="module", params=RUNS)
def trained(request):
    name = request.param
    return name, checkpoints.reference_model(name), checkpoints.load_record(name)


def test_weights_are_small_safetensors_matching_their_record(trained):
    name, _, record = trained
    path = checkpoints.weights_path(name)
    assert path.stat().st_size < 5 * 2**20
    assert record["weights"]["sha256"] == sha256_file(path)
    assert record["run"] == name and record["model"] == checkpoints.model_of(name)


def test_weights_load_strictly_into_the_registry_model(trained):
    name, model, _ = trained
    fresh = load_weights(create_model(checkpoints.model_of(name)), checkpoints.weights_path(name))
    untrained = create_model(checkpoints.model_of(name))
    state, init = fresh.state_dict(), untrained.state_dict()
    assert state.keys() == init.keys()
    assert any(not torch.equal(state[k], init[k]) for k in state)  # trained, not the seeded init
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_record_says_how_the_weights_were_made(trained):
    _, _, record = trained
    assert record["threads"] == 1 and record["deterministic_algorithms"] is True
    assert record["steps"] == record["recipe"]["steps"] > 0 and record["wall_s"] > 0
    assert {"torch", "numpy", "python"} <= record["versions"].keys()
    assert record["data"]["classes"] and record["data"]["train_sides_px"] == [64, 256]
    held = record["heldout"]
    assert held["n_per_size"] == evaluate.HELDOUT_N
    for group, sizes in evaluate.SIZE_GROUPS.items():
        assert list(held[group]) == [evaluate.size_key(*s) for s in sizes]


@pytest.mark.parametrize("size", evaluate.TEST_SLICE["sizes"], ids=lambda s: evaluate.size_key(*s))
def test_recorded_accuracy_is_reproduced_on_the_test_slice(trained, size):
    """The weights are fixed, so the held-out score is deterministic: recomputed, it equals the record."""
    _, model, record = trained
    n = record["heldout"]["test_slice"]["n"]
    score = evaluate.heldout_accuracy(evaluate.torch_runner(model), *size, n)
    assert score.hits == record["heldout"]["test_slice"]["hits"][evaluate.size_key(*size)]


def test_trained_models_beat_chance_by_a_wide_margin(trained):
    """In its training range every model is right far more often than 1 in 10 (the full held-out set:
    1000 images per size; a chance-level model reaches 0.3 there with probability < 1e-60)."""
    _, _, record = trained
    assert max(record["heldout"]["train_range"].values()) >= 3 * CHANCE


def test_fitting_the_model_to_the_protocol_keeps_its_outputs(trained):
    """`evaluate` loads the models fitted to the largest protocol side (ViTAR: 2 ATM stages, not 5)."""
    name, model, _ = trained
    fitted = checkpoints.reference_model(name, max_side=evaluate.max_protocol_side())
    x = next(evaluate.heldout_batches(512, 256, 2))[0]
    with torch.no_grad():
        assert torch.equal(model(torch.from_numpy(x)), fitted(torch.from_numpy(x)))


def test_readme_table_is_the_one_the_records_give():
    """The README's accuracy tables are generated (`train_reference.py table`), never edited by hand."""
    from pathlib import Path

    from resvit_export.reference.report import markdown_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert markdown_table() in readme
