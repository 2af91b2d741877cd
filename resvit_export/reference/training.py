"""Training recipes for the reference weights: the papers' training features, scaled down to a CPU.

One recipe per family (``RECIPES``), all on the shape task of ``task.py``, all deterministic:

* **sizes** — every step draws its input size from the training range: an equal-area side r ~ U(64, 256) and
  an aspect ratio W/H = exp(U(-ln 2, ln 2)), each side clipped to [64, 256]. DeiT follows its paper instead:
  one fixed 224×224 resolution (the baseline every resolution paper compares against).
* **ViTAR** — random size per step; the Fuzzy Positional Encoding jitter comes from the model in train mode.
  Trained with ``max_side=256`` (one ATM stage in the graph instead of five; same weights, same outputs).
  The ATM only merges above 224 px (14 tokens per side), so it is trained by the steps whose longer side is
  240-256 px (grid padding 15-16 -> 14); its weights are shared by every merge iteration at larger sizes.
* **ResFormer** — ``multires_views_loss``: each step renders the SAME scenes at three scales of one size
  (1, 160/224, 128/224: the paper's 224/160/128) and applies the paper's loss, CE at every scale plus the
  smooth-L1 scale-consistency term from each higher-resolution class token (detached, whitened by a
  parameter-free LayerNorm). ``models.resformer.multires_step`` computes the same loss but resizes the
  batch to squares, which would turn this task's discs into ellipses; the views here keep the aspect ratio.
* **NaViT** — Patch n' Pack: every image of a step gets its OWN size and aspect ratio, loses a random
  fraction of its patches (token dropping, rate ~ U(0, 0.5) per image, before packing as in the paper, so
  the dropped tokens cost nothing), and the kept patches are packed first-fit into 256-token sequences that
  ``PackedNaViT`` runs with per-image attention masks.
* **RIViT** — random size per step (the project trained at several resolutions, ResFormer style).

Determinism: one thread, ``torch.use_deterministic_algorithms(True)``, ``torch.manual_seed(seed)``, and every
step's sizes and scenes come from ``scene_rng(TRAIN, seed, step)``. The same (recipe, seed, steps) gives the
same weights, bit for bit, on the same torch build.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from resvit_export.models import create_model
from resvit_export.models.navit import ImagePatches, PackedBatch, PackedNaViT, pack_patches

from .task import SceneStream, draw_scenes, labels_of, render_batch, scene_rng

__all__ = ["Recipe", "RECIPES", "sample_size", "multires_views_loss", "pack_with_token_drop", "train",
           "TrainResult", "deterministic_torch"]

TRAIN_RANGE = (64, 256)
MAX_ASPECT = 2.0
RESFORMER_SCALES = (1.0, 160 / 224, 128 / 224)  # the paper's 224/160/128, as ratios of the step's size


@dataclass(frozen=True)
class Recipe:
    model: str
    steps: int
    batch: int  # images per step (NaViT: images packed per step)
    lr: float = 3e-3  # measured on deit_test, random sizes, 5000 steps: 1e-3 -> 41 %, 3e-3 -> 49 %, 6e-3 -> 43 % at 128 px
    weight_decay: float = 0.05
    warmup: int = 300
    clip_grad: float = 1.0
    kind: str = "random_size"  # random_size | fixed_size | multires | packed
    fixed_size: tuple[int, int] | None = None  # kind == fixed_size
    seq_len: int = 256  # kind == packed: tokens per packed sequence (one 256 px image)
    max_drop: float = 0.5  # kind == packed: per-image token-drop rate ~ U(0, max_drop)
    # config overrides used while training only; they must leave the state dict's keys and shapes unchanged
    train_overrides: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return dataclasses.asdict(self)


RECIPES: dict[str, Recipe] = {  # keyed by run name (checkpoints.RUNS)
    # Every run sees the same 96k training scenes (6000 steps of 16), except RIViT: its full-resolution conv
    # stem makes a step ~6x a DeiT step on one CPU thread, so it gets 1500 steps to stay near 5 minutes.
    # max_side 256 for ViTAR: the ATM graph needs 1 merge stage instead of 5 up to 256 px. The stages share
    # one block's weights and an idle stage is the exact identity, so the state dict and every output
    # <= 256 px are the same; it only skips 4 idle stages of attention + FFN (3.5x the step time otherwise).
    "vitar_test": Recipe("vitar_test", steps=6000, batch=16, train_overrides={"max_side": TRAIN_RANGE[1]}),
    "resformer_test": Recipe("resformer_test", steps=6000, batch=16, kind="multires"),
    "navit_test": Recipe("navit_test", steps=6000, batch=16, kind="packed"),
    "rivit_test": Recipe("rivit_test", steps=1500, batch=16),
    "deit_test": Recipe("deit_test", steps=6000, batch=16, kind="fixed_size", fixed_size=(224, 224)),
    "deit_test_random_size": Recipe("deit_test", steps=6000, batch=16),  # ablation: DeiT, the others' recipe
}


def deterministic_torch(seed: int, threads: int = 1) -> None:
    """Seed torch, pin the thread count and refuse nondeterministic kernels."""
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)


def sample_size(rng: np.random.Generator, lo: int = TRAIN_RANGE[0], hi: int = TRAIN_RANGE[1],
                max_aspect: float = MAX_ASPECT) -> tuple[int, int]:
    """(H, W) with equal-area side ~ U(lo, hi) and log-uniform aspect ratio in [1/max_aspect, max_aspect],
    each side clipped to [lo, hi]."""
    side = rng.uniform(lo, hi)
    aspect = math.exp(rng.uniform(-math.log(max_aspect), math.log(max_aspect)))
    h = int(round(min(max(side / math.sqrt(aspect), lo), hi)))
    w = int(round(min(max(side * math.sqrt(aspect), lo), hi)))
    return h, w


def multires_views_loss(model, views: list[torch.Tensor], labels: torch.Tensor, alpha: float = 1.0
                        ) -> tuple[torch.Tensor, dict[str, float]]:
    """ResFormer's objective over views ordered high -> low resolution (any aspect ratio):

        (1/r) · [ Σ_i CE(head(cls_i), y) + α · Σ_{i>=1} SmoothL1(cls_i, LN(cls_{i-1}.detach())) ]

    ``cls_i = model.forward_head(model.forward_features(view_i), pre_logits=True)``, the final-normed class
    token; LN has no affine parameters.
    """
    cls_prev, ce_sum, scl_sum = None, labels.new_zeros((), dtype=torch.float32), labels.new_zeros((), dtype=torch.float32)
    for view in views:
        cls = model.forward_head(model.forward_features(view), pre_logits=True)
        ce_sum = ce_sum + F.cross_entropy(model.head(cls), labels)
        if cls_prev is not None:
            teacher = F.layer_norm(cls_prev.detach(), cls.shape[-1:], eps=1e-5)
            scl_sum = scl_sum + F.smooth_l1_loss(cls, teacher)
        cls_prev = cls
    loss = (ce_sum + alpha * scl_sum) / len(views)
    return loss, {"ce": float(ce_sum.detach()), "scl": float(scl_sum.detach())}


def pack_with_token_drop(images: list[torch.Tensor], drop_rates: np.ndarray, rng: np.random.Generator,
                         patch_size: int, seq_len: int) -> PackedBatch:
    """NaViT's training input: per image, keep a random ``round(n·(1-rate))`` (>= 1) of its n patches (in grid
    order), then pack the kept patches first-fit into sequences of ``seq_len`` tokens."""
    kept = []
    for img, rate in zip(images, drop_rates):
        full = ImagePatches.full(img, patch_size)
        n = full.patches.shape[0]
        idx = torch.from_numpy(np.sort(rng.permutation(n)[: max(1, int(round(n * (1.0 - float(rate)))))]))
        kept.append(ImagePatches(full.patches[idx], full.coords[idx], full.grid))
    return pack_patches(kept, seq_len)


# ----------------------------------------------------------------------------------------------------
# One optimisation step per recipe kind: (model, recipe, step rng) -> (loss, logged parts)
# ----------------------------------------------------------------------------------------------------
def _step_single(model, recipe: Recipe, rng: np.random.Generator, key: tuple[int, int]):
    h, w = recipe.fixed_size if recipe.kind == "fixed_size" else sample_size(rng)
    scenes = draw_scenes(scene_rng(SceneStream.TRAIN, *key, 0), recipe.batch)
    x = torch.from_numpy(render_batch(scenes, h, w))
    loss = F.cross_entropy(model(x), torch.from_numpy(labels_of(scenes)))
    return loss, {"tokens": (h // 16) * (w // 16)}


def _step_multires(model, recipe: Recipe, rng: np.random.Generator, key: tuple[int, int]):
    lo, hi = TRAIN_RANGE
    # the lowest view must stay inside the training range: the top view's sides are >= lo / min scale
    h, w = sample_size(rng, lo=int(math.ceil(lo / RESFORMER_SCALES[-1])), hi=hi)
    scenes = draw_scenes(scene_rng(SceneStream.TRAIN, *key, 0), recipe.batch)
    views = [torch.from_numpy(render_batch(scenes, max(lo, round(h * s)), max(lo, round(w * s))))
             for s in RESFORMER_SCALES]
    loss, parts = multires_views_loss(model, views, torch.from_numpy(labels_of(scenes)))
    return loss, {**parts, "tokens": sum((v.shape[-2] // 16) * (v.shape[-1] // 16) for v in views)}


def _step_packed(model, recipe: Recipe, rng: np.random.Generator, key: tuple[int, int]):
    scenes = draw_scenes(scene_rng(SceneStream.TRAIN, *key, 0), recipe.batch)
    images = [torch.from_numpy(render_batch([s], *sample_size(rng))[0]) for s in scenes]
    rates = rng.uniform(0.0, recipe.max_drop, len(images))
    batch = pack_with_token_drop(images, rates, rng, model.cfg.patch_size, recipe.seq_len)
    logits = PackedNaViT(model)(*batch.inputs())
    logits = logits[batch.index[:, 0], batch.index[:, 1]]
    loss = F.cross_entropy(logits, torch.from_numpy(labels_of(scenes)))
    return loss, {"tokens": int((batch.image_ids >= 0).sum()), "sequences": batch.patches.shape[0]}


_STEPS: dict[str, Callable] = {"random_size": _step_single, "fixed_size": _step_single,
                               "multires": _step_multires, "packed": _step_packed}


@dataclass
class TrainResult:
    model: torch.nn.Module
    seed: int
    steps: int
    wall_s: float
    final_loss: float  # mean over the last 50 steps
    log: list[dict] = field(default_factory=list)  # every 50th step


def _lr_at(recipe: Recipe, step: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    t = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    return recipe.lr * 0.5 * (1 + math.cos(math.pi * t))


def train(recipe: Recipe, seed: int = 0, steps: int | None = None,
          progress: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train ``recipe.model`` from its seeded init; ``steps`` overrides the recipe's count (tests)."""
    steps = recipe.steps if steps is None else steps
    recipe = dataclasses.replace(recipe, steps=steps)
    deterministic_torch(seed)
    model = create_model(recipe.model, seed=seed, **recipe.train_overrides).train()
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    step_fn = _STEPS[recipe.kind]
    log, recent = [], []
    start = time.perf_counter()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = _lr_at(recipe, step)
        rng = scene_rng(SceneStream.TRAIN, seed, step, 1)  # sizes and drop rates; scenes use (seed, step, 0)
        loss, parts = step_fn(model, recipe, rng, (seed, step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.clip_grad)
        opt.step()
        recent = (recent + [float(loss.detach())])[-50:]
        if step % 50 == 0 or step == steps - 1:
            log.append({"step": step, "loss": round(float(np.mean(recent)), 4), **parts})
            if progress:
                progress(step, float(np.mean(recent)))
    return TrainResult(model.eval(), seed, steps, time.perf_counter() - start, float(np.mean(recent)), log)
