"""Held-out evaluation: top-1 accuracy of one runner and top-1 agreement between two, on numpy images.

A *runner* is any callable ``images [B, 3, H, W] float32 -> logits [B, classes]``: ``torch_runner(model)``
for PyTorch, ``onnx_runner(path)`` for an ONNX graph in ONNX Runtime; an FP16/INT8 graph or a TensorRT engine
wrapped the same way plugs in unchanged. Agreement is what the precision gates need (does the low-precision
graph pick the same class as the fp32 reference?); accuracy says whether the reference itself is any good.

The held-out images come from ``task.heldout_scenes`` (a seed range training never draws from) and are
rendered chunk by chunk, so 1000 images at 512 px never sit in memory at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from .task import heldout_scenes, labels_of, render_batch

__all__ = [
    "Runner",
    "torch_runner",
    "onnx_runner",
    "top1_accuracy",
    "top1_agreement",
    "heldout_batches",
    "Score",
    "heldout_accuracy",
    "heldout_agreement",
    "accuracy_table",
    "HELDOUT_N",
    "SIZE_GROUPS",
    "TEST_SLICE",
    "size_key",
    "max_protocol_side",
]

Runner = Callable[[np.ndarray], np.ndarray]


def torch_runner(model) -> Runner:
    """Eval-mode PyTorch forward without autograd; returns float32 numpy logits."""
    import torch

    model.eval()

    def run(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))).numpy()

    return run


def onnx_runner(path: str | os.PathLike, threads: int = 1) -> Runner:
    """ONNX Runtime CPU session on ``path`` (first input, first output)."""
    from resvit_export._optional import require

    ort = require("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def run(images: np.ndarray) -> np.ndarray:
        return sess.run(None, {name: np.ascontiguousarray(images, dtype=np.float32)})[0]

    return run


def _check_images(images: np.ndarray) -> None:
    if not isinstance(images, np.ndarray) or images.ndim != 4:
        raise ValueError(f"images must be a numpy array [N, C, H, W], got {getattr(images, 'shape', type(images))}")
    if len(images) == 0:
        raise ValueError("images is empty: nothing to evaluate")


def _predictions(runner: Runner, images: np.ndarray, batch_size: int) -> np.ndarray:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    preds = []
    for i in range(0, len(images), batch_size):
        logits = np.asarray(runner(images[i: i + batch_size]))
        if logits.ndim != 2 or logits.shape[0] != len(images[i: i + batch_size]):
            raise ValueError(f"runner returned shape {logits.shape} for {len(images[i: i + batch_size])} images; "
                             f"expected logits [batch, classes]")
        preds.append(logits.argmax(axis=1))
    return np.concatenate(preds)


def top1_accuracy(runner: Runner, images: np.ndarray, labels: np.ndarray, batch_size: int = 16) -> float:
    """Fraction of images whose arg-max logit is the label."""
    _check_images(images)
    labels = np.asarray(labels)
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},) to match the images, got {labels.shape}")
    return float(np.mean(_predictions(runner, images, batch_size) == labels))


def top1_agreement(runner_a: Runner, runner_b: Runner, images: np.ndarray, batch_size: int = 16) -> float:
    """Fraction of images on which both runners pick the same class (labels not needed)."""
    _check_images(images)
    return float(np.mean(_predictions(runner_a, images, batch_size) == _predictions(runner_b, images, batch_size)))


def heldout_batches(height: int, width: int, n: int, batch_size: int = 50, start: int = 0
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Held-out scenes ``start .. start+n-1`` rendered at height×width, ``batch_size`` at a time:
    (images [b, 3, H, W] ImageNet-normalised float32, labels [b] int64)."""
    for i in range(start, start + n, batch_size):
        scenes = heldout_scenes(min(batch_size, start + n - i), start=i)
        yield render_batch(scenes, height, width), labels_of(scenes)


@dataclass(frozen=True)
class Score:
    """``hits`` of ``total`` held-out images (exact, so a recomputed score equals a recorded one)."""

    hits: int
    total: int

    @property
    def value(self) -> float:
        return self.hits / self.total


def heldout_accuracy(runner: Runner, height: int, width: int, n: int, start: int = 0) -> Score:
    """Top-1 accuracy on the first ``n`` held-out scenes (from ``start``) at one resolution."""
    hits = 0
    for images, labels in heldout_batches(height, width, n, start=start):
        hits += int(np.sum(_predictions(runner, images, batch_size=len(images)) == labels))
    return Score(hits, n)


def heldout_agreement(runner_a: Runner, runner_b: Runner, height: int, width: int, n: int, start: int = 0,
                      batch_b: int | None = None) -> Score:
    """Top-1 agreement between two runners on the first ``n`` held-out scenes at one resolution.

    ``batch_b``: how many images ``runner_b`` gets per call (default: the whole rendered batch). A graph whose
    output for one image depends on the others in its batch (ONNX Runtime's dynamic INT8 scales activations per
    call) must be judged at the batch it will be deployed with.
    """
    same = 0
    for images, _ in heldout_batches(height, width, n, start=start):
        a = _predictions(runner_a, images, batch_size=len(images))
        same += int(np.sum(a == _predictions(runner_b, images, batch_size=batch_b or len(images))))
    return Score(same, n)


# ----------------------------------------------------------------------------------------------------
# The protocol the training records and the README table use
# ----------------------------------------------------------------------------------------------------
HELDOUT_N = 1000  # scenes per resolution (binomial standard error <= 1.6 points)
# (H, W) groups: inside the training range (sides 64-256, aspect <= 2), above it (a side > 256 or aspect 4),
# below it
SIZE_GROUPS = {
    "train_range": ((64, 64), (128, 128), (192, 192), (224, 224), (256, 256), (96, 192), (192, 96)),
    "unseen_larger": ((320, 320), (384, 384), (512, 512), (256, 512), (512, 256), (128, 512)),
    "unseen_smaller": ((48, 48),),
}
TEST_SLICE = {"n": 50, "sizes": ((224, 224), (192, 96), (384, 384))}  # what the test suite recomputes


def size_key(h: int, w: int) -> str:
    return f"{h}x{w}"


def max_protocol_side() -> int:
    return max(max(hw) for sizes in SIZE_GROUPS.values() for hw in sizes)


def accuracy_table(runner: Runner, n: int = HELDOUT_N) -> dict:
    """Held-out accuracy at every protocol size, by group, plus the exact hits on the test slice."""
    table: dict = {"n_per_size": n}
    for group, sizes in SIZE_GROUPS.items():
        table[group] = {size_key(h, w): heldout_accuracy(runner, h, w, n).value for h, w in sizes}
    table["test_slice"] = {"n": TEST_SLICE["n"],
                           "hits": {size_key(h, w): heldout_accuracy(runner, h, w, TEST_SLICE["n"]).hits
                                    for h, w in TEST_SLICE["sizes"]}}
    return table
