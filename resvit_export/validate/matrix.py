"""The resolution matrix: which (batch, H, W) cases the parity check runs for a set of profiles.

A profile is proven over its whole range by sampling the places where exported ViTs break (peers.md §4 item 2):

    min, opt, max                        the profile's own points
    edge                                 each edge moved one patch inwards (min+p, max-p) and opt ± p
    aspect                               the extreme aspect ratios min_H×max_W and max_H×min_W
    nonsquare                            opt_H×max_W and max_H×opt_W (moderate non-square, both orientations)
    offgrid                              sides that are not a multiple of the patch (the floor rule)
    batch                                batch > 1 (profile batch max, or 2) at min, opt, aspect, offgrid
                                         (not above the opt/aspect area: near-max batches cost N² memory)
    user                                 ``--resolutions`` given by the user

Every case lies inside its profile and at or above the model's minimum side. Cases are deduplicated on
(batch, H, W) and sorted by token count, then H, W, batch, so the same profile always yields the same list.

``merge_same_grid`` then drops a case whose batch and token grid another case already has, when the graph is
proven to see the image only through that grid (``grid_proof``): e.g. edge-1776x1776 and
offgrid-1791x1783 both run the 111x111 grid, so the edge case adds only a second random draw. Profile
corners (min, max, opt) and user sizes are never dropped, and one off-grid case per grid is kept, because
only an off-grid case checks that the PyTorch reference floors like the graph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from resvit_export.errors import UsageError
from resvit_export.profiles import ResolutionProfile, parse_sizes

__all__ = ["Case", "MergedCase", "resolution_matrix", "merge_same_grid", "parse_resolutions"]

# Lower number wins when two rules produce the same (batch, H, W).
_PRIORITY = {"min": 0, "max": 1, "opt": 2, "user": 3, "aspect": 4, "edge": 5, "nonsquare": 6, "offgrid": 7}
# Never merged away: the profile's own points (TensorRT profile bounds) and what the user asked for.
_KEPT_KINDS = ("min", "max", "opt", "user")


@dataclass(frozen=True)
class Case:
    """One parity case: run a [batch, C, h, w] input through PyTorch and the artifact."""

    name: str
    batch: int
    h: int
    w: int
    kind: str

    def tokens(self, patch_size: int = 16) -> int:
        """Patch tokens under the floor rule (class token not counted)."""
        return (self.h // patch_size) * (self.w // patch_size)

    def grid(self, patch_size: int = 16) -> tuple[int, int]:
        return self.h // patch_size, self.w // patch_size

    def on_grid(self, patch_size: int = 16) -> bool:
        return self.h % patch_size == 0 and self.w % patch_size == 0

    def to_dict(self) -> dict:
        return {"name": self.name, "batch": self.batch, "h": self.h, "w": self.w, "kind": self.kind}


@dataclass(frozen=True)
class MergedCase:
    """A case not run because ``into`` runs the same batch and token grid (see ``merge_same_grid``)."""

    case: Case
    into: str
    reason: str

    def to_dict(self) -> dict:
        return {**self.case.to_dict(), "into": self.into, "reason": self.reason}


def parse_resolutions(text: str | Iterable | None) -> list[tuple[int, int]]:
    """Parse ``--resolutions``: '320x1024,97x301' or '512' (square); also accepts a list of (H, W).

    Strings go through the one size-list parser, :func:`resvit_export.profiles.parse_sizes`.

    Raises:
        UsageError: a malformed entry (the message shows the accepted form).
    """
    if text is None or text == "":
        return []
    if isinstance(text, str):
        return parse_sizes(text)
    out = []
    for item in text:
        if isinstance(item, str):
            out.extend(parse_sizes(item))
        else:
            h, w = item
            out.append((int(h), int(w)))
    return out


def _clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))


def _off_grid(v: int, lo: int, hi: int, p: int) -> int | None:
    """``v`` nudged inside [lo, hi] to a side that is not a multiple of ``p`` (None if the range has none)."""
    v = _clamp(v, lo, hi)
    for cand in (v, v + 1, v - 1, v + 2, v - 2):
        if lo <= cand <= hi and cand % p:
            return cand
    return None


def _profile_sizes(prof: ResolutionProfile, rule) -> list[tuple[int, int, str]]:
    p = rule.patch_size
    (h0, w0), (h1, w1) = prof.min, prof.max
    oh, ow = prof.resolved_opt(p)
    lo_h, lo_w = max(h0, rule.min_side), max(w0, rule.min_side)

    def inside(h, w):
        return lo_h <= h <= h1 and lo_w <= w <= w1

    sizes = [(h0, w0, "min"), (h1, w1, "max"), (oh, ow, "opt")]
    # one patch inside each edge, and one patch either side of opt
    sizes += [(h0 + p, w0 + p, "edge"), (h1 - p, w1 - p, "edge"), (oh - p, ow + p, "edge"), (oh + p, ow - p, "edge")]
    # extreme aspect ratios inside the profile, both orientations
    sizes += [(h0, w1, "aspect"), (h1, w0, "aspect")]
    sizes += [(oh, w1, "nonsquare"), (h1, ow, "nonsquare")]
    # sides that are not multiples of the patch: near min, mid-range, just below max
    for hh, ww in ((h0 + 1, w0 + p - 1), (oh + p // 2 + 1, ow - 3), (h1 - 1, w1 - p // 2 - 1), (h0 + p // 2 + 1, w1 - 1)):
        gh, gw = _off_grid(hh, lo_h, h1, p), _off_grid(ww, lo_w, w1, p)
        if gh is not None and gw is not None:
            sizes.append((gh, gw, "offgrid"))
    return [(h, w, k) for h, w, k in sizes if inside(h, w)]


def resolution_matrix(
    profile: ResolutionProfile | Sequence[ResolutionProfile],
    size_rule,
    extra: Iterable = (),
    batch_sizes: Sequence[int] | None = None,
) -> list[Case]:
    """Derive the parity cases for one profile (or the union over several).

    Args:
        profile: a ResolutionProfile or a list of them.
        size_rule: the model's ``models.SizeRule`` (patch size, minimum/maximum side).
        extra: user resolutions, '320x1024,97x301' or [(H, W), ...]; each must lie inside a profile.
        batch_sizes: batch sizes to run on the batch subset; None = the profile's batch min and
            (batch max, or 2 when the profile's batch is fixed at 1).

    Returns:
        Cases, deduplicated on (batch, H, W), sorted by (tokens, H, W, batch).

    Raises:
        UsageError: an extra size outside every profile or below the model's minimum side; a profile
            that leaves the model's size rule (InputSizeError).
    """
    profiles = [profile] if isinstance(profile, ResolutionProfile) else list(profile)
    if not profiles:
        raise UsageError("resolution_matrix needs at least one profile")
    for prof in profiles:
        prof.check_against(size_rule)

    found: dict[tuple[int, int, int], str] = {}

    def add(b, h, w, kind):
        key = (b, h, w)
        if key not in found or _PRIORITY[kind] < _PRIORITY[found[key]]:
            found[key] = kind

    for prof in profiles:
        b_lo = prof.batch.min
        bigger = list(batch_sizes) if batch_sizes else [max(prof.batch.max, 2)]
        sizes = _profile_sizes(prof, size_rule)
        # batch > 1 stays at or below the opt/aspect areas: near-max sizes at batch > 1 would multiply the
        # eager reference's N^2 attention memory (7 GB for a ViT-S at 1792 px, batch 2) for no new coverage
        cap = 1.25 * max(h * w for h, w, k in sizes if k in ("min", "opt", "aspect"))
        for h, w, kind in sizes:
            add(b_lo, h, w, kind)
            if kind in ("min", "opt", "aspect", "offgrid") and h * w <= cap:
                for b in bigger:
                    if b != b_lo:
                        add(int(b), h, w, kind)

    for h, w in parse_resolutions(extra):
        if min(h, w) < size_rule.min_side:
            raise UsageError(
                f"--resolutions {h}x{w} is below the model's minimum side of {size_rule.min_side} px; "
                f"use sizes of at least {size_rule.min_side}"
            )
        if not any(prof.contains(h, w, prof.batch.min) for prof in profiles):
            ranges = ", ".join(str(p) for p in profiles)
            raise UsageError(
                f"--resolutions {h}x{w} lies outside the profile(s) {ranges}; the artifact is only built for "
                f"that range: pick a size inside it or widen --profile"
            )
        add(min(p.batch.min for p in profiles), h, w, "user")

    p = size_rule.patch_size
    cases = [Case(f"{kind}-{h}x{w}-b{b}", b, h, w, kind) for (b, h, w), kind in found.items()]
    return sorted(cases, key=lambda c: (c.tokens(p), c.h, c.w, c.batch))


def merge_same_grid(cases: Sequence[Case], patch_size: int, proof_reason: str) -> tuple[list[Case], list[MergedCase]]:
    """Drop cases whose (batch, token grid) another kept case runs; call only when the graph is proven to
    read the image through the patch grid (``grid_proof.prove_patch_grid_input``), whose reason is quoted.

    Per (batch, grid) group: profile corners and user sizes stay; the first off-grid case stays unless a kept
    one is already off the grid (it is what checks that the reference floors too); every other case goes.

    Returns:
        (kept cases in their original order, merged cases naming the kept case that covers them)
    """
    groups: dict[tuple[int, int, int], list[Case]] = {}
    for c in cases:
        groups.setdefault((c.batch, *c.grid(patch_size)), []).append(c)
    dropped: dict[str, MergedCase] = {}
    for (batch, gh, gw), group in groups.items():
        if len(group) < 2:
            continue
        keep = [c for c in group if c.kind in _KEPT_KINDS]
        if not any(not c.on_grid(patch_size) for c in keep):
            keep += [c for c in group if not c.on_grid(patch_size) and c not in keep][:1]
        keep = keep or group[:1]
        into = next((c for c in keep if not c.on_grid(patch_size)), keep[0])
        for c in group:
            if c not in keep:
                dropped[c.name] = MergedCase(c, into.name, f"same batch {batch} and {gh}x{gw} token grid as "
                                                           f"{into.name}; {proof_reason}")
    return [c for c in cases if c.name not in dropped], [dropped[c.name] for c in cases if c.name in dropped]
