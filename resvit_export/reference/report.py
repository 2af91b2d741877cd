"""The README's held-out accuracy table, built from the training records (never typed by hand)."""

from __future__ import annotations

import os

from resvit_export.errors import CheckpointError

from .checkpoints import RUNS, load_record
from .evaluate import SIZE_GROUPS, size_key

__all__ = ["markdown_table", "group_mean"]

# paper order of the comparison: the baseline first, then the resolution-flexible designs
_ROW_ORDER = ("deit_test", "deit_test_random_size", "resformer_test", "vitar_test", "navit_test", "rivit_test")


def group_mean(scores: dict[str, float]) -> float:
    return sum(scores.values()) / len(scores)


def _recipe_words(rec: dict) -> str:
    r = rec["recipe"]
    if r["kind"] == "fixed_size":
        return f"fixed {r['fixed_size'][0]}×{r['fixed_size'][1]}"
    return {"random_size": "random sizes", "multires": "multi-res ×3 + scale consistency",
            "packed": "packed, token drop"}[r["kind"]]


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def markdown_table(folder: str | os.PathLike | None = None, names: tuple[str, ...] = RUNS) -> str:
    """Two markdown tables from the records: per model the mean held-out accuracy (%) in each size group,
    then the accuracy at every protocol size (unseen sizes in bold)."""
    records = [load_record(name, folder) for name in _ROW_ORDER if name in names]
    missing = [r["run"] for r in records if not r.get("heldout")]
    if missing:
        raise CheckpointError(f"records without held-out accuracy: {', '.join(missing)}; run "
                              f"`python training/train_reference.py evaluate {' '.join(missing)}` first")
    summary = ["| run | training | steps | train s | sides 64–256 | unseen larger | larger / in-range | 48×48 |",
               "|---|---|--:|--:|--:|--:|--:|--:|"]
    groups = list(SIZE_GROUPS)
    sizes = [(g, size_key(h, w)) for g in groups for h, w in SIZE_GROUPS[g]]
    detail = ["| run | " + " | ".join(k.replace("x", "×") if g == "train_range" else f"**{k.replace('x', '×')}**"
                                     for g, k in sizes) + " |",
              "|---|" + "--:|" * len(sizes)]
    for rec in records:
        ho = rec["heldout"]
        inside, larger = group_mean(ho["train_range"]), group_mean(ho["unseen_larger"])
        summary.append(f"| {rec['run']} | {_recipe_words(rec)} | {rec['steps']} | {rec['wall_s']:.0f} | "
                       f"{_pct(inside)} | {_pct(larger)} | {larger / inside if inside else float('nan'):.2f} | {_pct(group_mean(ho['unseen_smaller']))} |")
        detail.append(f"| {rec['run']} | " + " | ".join(_pct(ho[g][k]) for g, k in sizes) + " |")
    return "\n".join(summary) + "\n\n" + "\n".join(detail)
