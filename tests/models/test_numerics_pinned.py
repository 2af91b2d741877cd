"""Pins every model's state-dict layout and seeded init bit for bit, and its logits to 1e-4.

Outside agreements depend on these staying fixed: trained checkpoints (training/, weights/), deit_s == timm
deit_small_patch16_224, resformer_s == official ResFormer, navit_s == timm NaFlexViT. A refactor of models/
must leave every fingerprint here unchanged; a deliberate architecture change regenerates the file with
``python tests/models/test_numerics_pinned.py`` and says why in its commit.

Init values come from torch's CPU generator and are the same bytes on every machine, so they are hashed.
Logits are not: the same code gave different low bits on an Intel and an AMD host (oneDNN/MKL pick other
kernels per instruction set), so logits are pinned as a sample of values compared to a relative 1e-4, far
below what any change to the mathematics moves and far above the ~1e-6 kernels differ by.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from resvit_export.models import create_model

GOLDEN = Path(__file__).with_name("numerics_pinned.json")
LOGIT_REL_TOL, LOGIT_ABS_TOL = 1e-4, 1e-5
SAMPLES_PER_ROW = 8
# name -> input sizes (H, W): the minimum, off-grid non-square, a square size, and (ViTAR) sizes that merge
SIZES = {
    "deit_test": [(32, 32), (97, 301), (224, 224), (448, 480)],
    "resformer_test": [(32, 32), (97, 301), (224, 224), (448, 480)],
    "navit_test": [(32, 32), (97, 301), (224, 224), (448, 480)],
    "vitar_test": [(32, 32), (97, 301), (224, 224), (448, 480), (1120, 752)],
    "rivit_test": [(32, 32), (97, 301), (224, 224), (448, 480)],
    "deit_s": [(97, 301), (224, 224)],
    "resformer_s": [(97, 301), (224, 224)],
    "navit_s": [(97, 301), (224, 224)],
    "vitar_s": [(224, 224), (480, 448)],
    "rivit": [(97, 301), (224, 224)],
}


def _digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def _logit_sample(logits: torch.Tensor) -> list[float]:
    """Per row of [B, C] logits: 8 evenly spaced values, the mean and the std (enough to see any real change)."""
    rows = logits.detach().double().reshape(logits.shape[0], -1)
    idx = torch.linspace(0, rows.shape[1] - 1, SAMPLES_PER_ROW).round().long()
    out: list[float] = []
    for r in rows:
        out += [float(v) for v in r[idx]] + [float(r.mean()), float(r.std())]
    return out


def _differs(now: list[float], golden: list[float]) -> bool:
    return len(now) != len(golden) or not all(
        math.isclose(a, b, rel_tol=LOGIT_REL_TOL, abs_tol=LOGIT_ABS_TOL) for a, b in zip(now, golden))


def fingerprint(name: str) -> dict:
    """Layout (keys and shapes), seed-0 init values and logits at each size in SIZES, single-threaded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reductions split differently across threads; one thread is reproducible
    try:
        model = create_model(name, seed=0)
        state = model.state_dict()
        out = {
            "layout": {k: list(v.shape) for k, v in state.items()},
            "init": _digest(*state.values()),
            "logits": {},
        }
        gen = torch.Generator().manual_seed(1234)
        with torch.no_grad():
            for h, w in SIZES[name]:
                x = torch.randn(2, 3, h, w, generator=gen)
                out["logits"][f"{h}x{w}"] = _logit_sample(model(x))
        if name == "navit_test":  # the packed path shares the weights: pin it too
            from resvit_export.models.navit import PackedNaViT, pack_images

            imgs = [torch.randn(3, h, w, generator=gen) for h, w in ((64, 96), (160, 48), (32, 32))]
            batch = pack_images(imgs, 16, max_seq_len=64)
            out["logits"]["packed"] = _logit_sample(PackedNaViT(model)(*batch.inputs()))
        return out
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_layout_init_and_logits_are_unchanged(name):
    golden = json.loads(GOLDEN.read_text())[name]
    now = fingerprint(name)
    assert now["layout"] == golden["layout"], "state-dict keys or shapes changed: checkpoints would not load"
    assert now["init"] == golden["init"], "seeded initialisation changed"
    assert set(now["logits"]) == set(golden["logits"])
    changed = [size for size in golden["logits"] if _differs(now["logits"][size], golden["logits"][size])]
    assert not changed, f"forward numerics changed at {changed}"


def test_the_logit_comparison_sees_a_real_change():
    sample = _logit_sample(torch.linspace(-3, 3, 2000).reshape(2, 1000))
    assert not _differs([v * (1 + 1e-6) for v in sample], sample)
    assert _differs([v * (1 + 1e-3) for v in sample], sample)


if __name__ == "__main__":  # regenerate (a deliberate architecture change only)
    GOLDEN.write_text(json.dumps({n: fingerprint(n) for n in sorted(SIZES)}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}", file=sys.stderr)
