"""Held-out evaluation helpers: accuracy and agreement on numpy images with any runner."""

from __future__ import annotations

import numpy as np
import pytest

from resvit_export.reference import evaluate, task


def _fixed_runner(classes: np.ndarray):
    """A runner that answers ``classes[i]`` for the i-th image it is shown (across calls)."""
    seen = {"i": 0}

    def run(images):
        n = len(images)
        logits = np.zeros((n, 10), dtype=np.float32)
        logits[np.arange(n), classes[seen["i"]: seen["i"] + n]] = 1.0
        seen["i"] += n
        return logits

    return run


def test_accuracy_counts_argmax_hits_across_batches():
    images = np.zeros((7, 3, 32, 32), dtype=np.float32)
    labels = np.array([0, 1, 2, 3, 4, 5, 6])
    preds = np.array([0, 1, 9, 3, 9, 5, 9])
    assert evaluate.top1_accuracy(_fixed_runner(preds), images, labels, batch_size=3) == pytest.approx(4 / 7)


def test_agreement_compares_two_runners_without_labels():
    images = np.zeros((5, 3, 32, 32), dtype=np.float32)
    a, b = np.array([1, 2, 3, 4, 5]), np.array([1, 2, 0, 4, 0])
    assert evaluate.top1_agreement(_fixed_runner(a), _fixed_runner(b), images, batch_size=2) == pytest.approx(3 / 5)
    assert evaluate.top1_agreement(_fixed_runner(a), _fixed_runner(a), images) == 1.0


@pytest.mark.parametrize("bad, match", [(np.zeros((3, 32, 32), np.float32), r"\[N, C, H, W\]"),
                                        (np.zeros((0, 3, 32, 32), np.float32), "empty")])
def test_bad_images_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        evaluate.top1_accuracy(lambda x: np.zeros((len(x), 10)), bad, np.zeros(len(bad)))


def test_labels_must_match_images():
    with pytest.raises(ValueError, match="labels must have shape"):
        evaluate.top1_accuracy(lambda x: np.zeros((len(x), 10)), np.zeros((4, 3, 32, 32), np.float32), np.zeros(3))


def test_runner_with_wrong_output_shape_is_refused():
    with pytest.raises(ValueError, match="expected logits"):
        evaluate.top1_accuracy(lambda x: np.zeros(10), np.zeros((2, 3, 32, 32), np.float32), np.zeros(2))


def test_heldout_batches_are_the_heldout_scenes_in_chunks():
    chunks = list(evaluate.heldout_batches(64, 96, n=7, batch_size=3, start=2))
    assert [len(labels) for _, labels in chunks] == [3, 3, 1]
    images = np.concatenate([x for x, _ in chunks])
    assert np.array_equal(images, task.render_batch(task.heldout_scenes(7, start=2), 64, 96))
    assert np.concatenate([y for _, y in chunks]).tolist() == [i % 10 for i in range(2, 9)]


def test_heldout_accuracy_of_an_oracle_and_of_a_constant():
    scenes = task.heldout_scenes(20)
    label_of = {x.tobytes(): s.label for x, s in zip(task.render_batch(scenes, 48, 64), scenes)}

    def oracle(images):  # recovers the label from the pixels by looking the rendered scene up
        out = np.zeros((len(images), 10), np.float32)
        for i, x in enumerate(images):
            out[i, label_of[x.tobytes()]] = 1
        return out

    assert evaluate.heldout_accuracy(oracle, 48, 64, 20) == evaluate.Score(20, 20)
    constant = evaluate.heldout_accuracy(lambda x: np.tile(np.eye(10)[3], (len(x), 1)), 48, 64, 20)
    assert constant == evaluate.Score(2, 20) and constant.value == 0.1
    assert evaluate.heldout_agreement(oracle, oracle, 48, 64, 20).value == 1.0

    calls = []

    def one_at_a_time(images):  # the oracle, recording how many images each call got
        calls.append(len(images))
        return oracle(images)

    assert evaluate.heldout_agreement(oracle, one_at_a_time, 48, 64, 20, batch_b=1).value == 1.0
    assert calls == [1] * 20
    calls.clear()
    assert evaluate.heldout_agreement(oracle, one_at_a_time, 48, 64, 20, batch_b=8).value == 1.0
    assert calls == [8, 8, 4]



def test_evaluation_needs_neither_torch_nor_onnxruntime_to_import():
    """Gates on a device (numpy + an engine runner) can use the held-out set without torch."""
    import subprocess
    import sys

    code = ("import sys, resvit_export.reference.evaluate, resvit_export.reference.checkpoints; "
            "print(sorted(m for m in ('torch', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
