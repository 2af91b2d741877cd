"""ViTAR — Vision Transformer with Any Resolution (Fan et al., arXiv 2403.18361), export-safe.

Pipeline (paper Fig. "overall"): patch embedding (16 px) -> Fuzzy Positional Encoding (FPE) added to the
H×W token map -> Adaptive Token Merger (ATM) down to a fixed G×G grid (G = 14) -> standard pre-LN
transformer blocks -> final LayerNorm -> global average pooling -> linear head.

Size rule: any H, W in [32, 4096] px, floor rule for sides that are not a multiple of 16 (the patch
convolution floors). An axis with at most G tokens (< 240 px) is never merged, so the final grid is
``min(tokens, G)`` per axis (2×2 tokens at the 32 px minimum, 14×14 from 224 px up).

ATM merge rule (per axis, per iteration; the paper's three cases plus odd-side padding)
    s >= 2G      -> halve; an odd side gets one pad token (s' = ceil(s/2))
    G < s < 2G   -> grid-pad to 2G, then halve (s' = G)
    s <= G       -> this axis is not merged (s' = s)
All three are one formula, ``s' = min(s, max(G, ceil(s/2)))``, and one cell layout: ``p = 2s' - s``
cells hold a single real token (cell j < p -> token j plus a pad), the other cells hold two
(cell j >= p -> tokens 2j-p, 2j-p+1). This is the paper's *grid padding* (appendix figure): pads are
interleaved into the first p cells, never stacked at the border, so every cell keeps a real token.
``merge_plan`` is the pure-Python statement of the rule (tests, reports); forward never calls it.
Square inputs, patch 16: 224->0, 448->1, 672->2, 896->2, 1120->3, 1792->3, 2240->4, 4032->5 iterations.

Export safety (measured with torch 2.13, ``torch.onnx.export(..., dynamo=True, opset_version=18)``):
a Python loop whose trip count depends on H, W is unrolled to the example's count (a first version
returned a 7×7 grid at 448 px). Here the ATM always runs a FIXED number K of stages
(K = iterations needed at ``max_side``: 5 for 4096 px), each computing its output side with SymInt
arithmetic (``torch.sym_min``/``torch.sym_max``, which export and translate to ONNX without trouble) and
gathering rows/cols with index maps built from ``torch.arange`` + ``torch.where``. Two formulations
keep ``torch.export`` fast (a first version spent minutes in sympy): stage k's side is computed in
closed form from the ATM input side, ``min(s0, max(G, ceil(s0 / 2^k)))``, instead of from the previous
stage's nested Min/Max expression; and the cell attention (1 query, <= 4 keys) is written with
broadcasted products and sums, so no view ever splits or merges a symbolic dim inside the ATM.
Measured (vitar_test, 2 CPU cores): export ~25-30 s, ONNX Runtime == eager to ~1e-7 from 32 to 4096 px.
A stage where no axis merges is the exact identity: its attention
and FFN residual updates are multiplied by a 0/1 tensor gate ("some cell holds two real tokens"), and the
masked mean of a single real token is that token bit for bit. No ``int()``, ``.item()``, ``linspace``,
adaptive pooling or Python branch touches a size-dependent value in ``forward``.

Design choices where the paper is silent (README material):
- FPE table: learnable C×14×14 (the 224 px grid), trunc-normal(0.02) init. Training: ``grid_sample``
  (bilinear, align_corners=False, padding border) at each token's reference centre (i+0.5)/H plus an
  i.i.d. U[-0.5, 0.5]-token jitter per token, per axis and per image. Eval: no jitter, implemented as
  ``F.interpolate(size=(gh, gw) from the tensor shape, bilinear, align_corners=False, antialias=False)``,
  which is the same function (half-pixel centres, edge clamp == border padding) and exports to a
  runtime-size ONNX Resize.
- ATM block = one pre-LN transformer block with a cross-attention: q = Wq(LN1(cell mean)),
  k, v = Wk, Wv(LN1(cell tokens)); out = mean + Attn; then out + FFN(LN2(out)) (FFN ratio 4, GELU,
  residual). Heads = the backbone's heads. Weights shared by all iterations (paper: "×m shared weights").
- Pad tokens are MASKED (excluded from the cell mean and from the attention keys); the re-implementations
  (VSA, HD) average zeros in. Masking makes a (real, pad) cell depend on its real token only and is
  what makes the identity-stage property exact.
- A cell that holds one real token inside an active stage (odd side, grid padding, or an axis already at
  G while the other axis merges) still goes through attention + FFN, like every cell of that iteration.
- At exactly G×G (224 px) the ATM runs 0 iterations (identity); the paper does not say whether one pass
  runs there (its 224 px FLOPs, 19 G vs DeiT-B 18 G, would allow one).
- Pooling: LayerNorm then global average pooling over the G×G tokens (no class token: it has no place in
  the cell structure of the ATM).
- Cost of the fixed-K design: identity stages still compute attention + FFN over <= G² cells (wasted work,
  at most K-1 small passes; at 224 px all K stages are identity).

Gated stages (``atm_gate=True``, for runtimes whose If may carry run-time shapes: ONNX Runtime, TensorRT >= 10.11):
each stage's attention + FFN sits in ``torch.cond(merges, ...)``, which the dynamo exporter writes as an ONNX ``If``
whose condition is shape arithmetic ("this stage's output grid is smaller than its input"). A stage that merges
nothing then costs a gather instead of a block (vitar_s at 224 px in a 224-1792 graph: the fitted model's FLOPs
instead of +3 block passes). The skipped branch returns each cell's first token, which is what the always-compute
form returns there bit for bit, so the two forms give identical outputs at every size. TensorRT before 10.11
requires If branches of equal shape (lint rule TRT018), so JetPack 6 keeps the always-compute form (the default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from resvit_export.errors import ConfigError

from .base import ResolutionFlexibleModel
from .contract import DeploySpec, ViTConfig
from .layers import Block, Mlp, PatchEmbed, resample_pos_embed
from .registry import register_model

__all__ = [
    "ViTARConfig",
    "ViTAR",
    "FuzzyPositionalEncoding",
    "AdaptiveTokenMerger",
    "GridAttentionBlock",
    "merge_plan",
    "merge_stage_count",
    "merge_boundaries",
    "cell_index",
]


# ----------------------------------------------------------------------------------------------------
# Pure-Python statement of the merge rule (tests, reports, profile planning; never used by forward)
# ----------------------------------------------------------------------------------------------------
def _next_side(s: int, grid: int) -> int:
    return min(s, max(grid, (s + 1) // 2))


def merge_plan(h_tokens: int, w_tokens: int, grid: int = 14) -> list[tuple[int, int]]:
    """Token-grid sizes the ATM goes through: ``[(h0, w0), (h1, w1), ..., (h_final, w_final)]``.

    The first entry is the input grid, each further entry is the grid after one merge iteration, so
    ``len(plan) - 1`` is the number of iterations and ``plan[-1]`` the final grid
    (``(min(h, G), min(w, G))``). Example: ``merge_plan(70, 70) == [(70, 70), (35, 35), (18, 18), (14, 14)]``.
    """
    if h_tokens < 1 or w_tokens < 1 or grid < 1:
        raise ValueError(f"token grid {h_tokens}×{w_tokens} and grid {grid} must be positive")
    plan = [(h_tokens, w_tokens)]
    h, w = h_tokens, w_tokens
    while True:
        nh, nw = _next_side(h, grid), _next_side(w, grid)
        if (nh, nw) == (h, w):
            return plan
        h, w = nh, nw
        plan.append((h, w))


def merge_stage_count(max_tokens: int, grid: int = 14) -> int:
    """Most iterations any grid with sides <= ``max_tokens`` needs (the fixed stage count K)."""
    return max(len(merge_plan(s, 1, grid)) - 1 for s in range(1, max_tokens + 1))


def merge_boundaries(lo_tokens: int, hi_tokens: int, grid: int = 14) -> list[int]:
    """Token sides ``s`` in [lo, hi) where one more token needs another iteration (iterations(s+1) > iterations(s)).

    The sizes where a gated ATM switches a stage on; equality checks go to both sides of each
    (``merge_boundaries(14, 112) == [14, 28, 56]``: 224|240, 448|464 and 896|912 px at patch 16).
    """
    iters = [len(merge_plan(s, 1, grid)) - 1 for s in range(lo_tokens, hi_tokens + 1)]
    return [lo_tokens + i for i in range(len(iters) - 1) if iters[i + 1] != iters[i]]


def cell_index(s, s_out, device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Grid-padding layout of one axis: side ``s`` -> ``s_out`` cells of at most two tokens.

    Returns ``(first, second, second_valid)``, each of length ``s_out``: cell j holds token ``first[j]``
    and, where ``second_valid[j]``, token ``second[j]`` (elsewhere ``second[j]`` is a harmless in-range
    index of a masked pad). ``s`` and ``s_out`` may be ints or SymInts (export); built from ``arange``.
    """
    j = torch.arange(s_out, device=device)
    p = 2 * s_out - s  # cells that hold a single real token (the first p)
    single = j < p
    first = torch.where(single, j, 2 * j - p)
    second = torch.where(single, j, 2 * j - p + 1)
    return first, second, ~single


# ----------------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ViTARConfig(ViTConfig):
    grid: int = 14  # G: ATM output side (224 px / 16)
    pos_grid: int = 14  # FPE learnable table side
    # Skip ATM stages that merge nothing with an ONNX If (see the module docstring). Off by default: TensorRT before
    # 10.11 (JetPack 6) rejects it. ``deploy_overrides`` turns it on when every deployment target accepts it.
    atm_gate: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.grid < 1 or self.pos_grid < 1:
            raise ConfigError(f"grid {self.grid} and pos_grid {self.pos_grid} must be >= 1")

    @property
    def merge_stages(self) -> int:
        """K: fixed number of ATM stages in the graph (enough for ``max_side``)."""
        return merge_stage_count(self.max_side // self.patch_size, self.grid)

    def deploy_overrides(self, profile_max_side: int, *, runtime_if: bool = False) -> dict:
        """``max_side`` fitted to the profiles (fixes K), plus gated stages where every target runs ``If`` with
        run-time branch shapes (``runtime_if``)."""
        out = super().deploy_overrides(profile_max_side, runtime_if=runtime_if)
        if runtime_if:
            out["atm_gate"] = True
        return out


# ----------------------------------------------------------------------------------------------------
# Fuzzy positional encoding
# ----------------------------------------------------------------------------------------------------
class FuzzyPositionalEncoding(nn.Module):
    """Learnable C×T×T table; training samples it at jittered token centres, eval resizes it."""

    def __init__(self, dim: int, table: int = 14):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(1, dim, table, table))
        nn.init.trunc_normal_(self.table, std=0.02)

    def sample(self, batch: int, gh, gw, jitter: torch.Tensor | None = None) -> torch.Tensor:
        """grid_sample the table at token centres ((i+0.5+jitter)/gh, ...) -> [batch, C, gh, gw].

        ``jitter``: [batch, gh, gw, 2] in token units, last dim (x = width, y = height); None = 0.
        """
        dev = self.table.device
        ys = (torch.arange(gh, device=dev, dtype=torch.float32) + 0.5)[:, None].expand(gh, gw)
        xs = (torch.arange(gw, device=dev, dtype=torch.float32) + 0.5)[None, :].expand(gh, gw)
        pos = torch.stack([xs, ys], dim=-1)[None].expand(batch, gh, gw, 2)
        if jitter is not None:
            pos = pos + jitter
        size = torch.stack([torch.ones((), device=dev) * gw, torch.ones((), device=dev) * gh])
        coords = pos / size * 2.0 - 1.0
        table = self.table.expand(batch, -1, -1, -1)
        return F.grid_sample(table, coords.to(table.dtype), mode="bilinear", padding_mode="border",
                             align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, gh, gw = x.shape
        if self.training:
            jitter = torch.rand(B, gh, gw, 2, device=x.device) - 0.5
            return x + self.sample(B, gh, gw, jitter)
        # Sizes from the tensor's shape: a runtime-size Resize in ONNX.
        return x + resample_pos_embed(self.table, (gh, gw), mode="bilinear", antialias=False)


# ----------------------------------------------------------------------------------------------------
# Adaptive token merger
# ----------------------------------------------------------------------------------------------------
class GridAttentionBlock(nn.Module):
    """One ATM iteration's weights: cell-mean-query cross-attention over <= 4 cell tokens, then FFN."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, cand: torch.Tensor, valid: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """cand [B, h, w, 4, C] (cell tokens), valid [h, w, 4] bool, gate 0-d 0/1 -> [B, h, w, C]."""
        m = valid.to(cand.dtype)[None, :, :, :, None]  # [1, h, w, 4, 1]
        mean = (cand * m).sum(dim=3) / m.sum(dim=3)  # masked mean; one real token -> itself exactly
        H, d = self.num_heads, self.head_dim
        # Attention with one query and <= 4 keys written as broadcasted products and sums: only static
        # (channel/head) dims are ever split or merged, no batched matmul views over the symbolic h, w
        # (those views made torch.export's symbolic shape reasoning take minutes).
        q = self.q(self.norm1(mean)).unflatten(-1, (H, d)).unsqueeze(3)  # [B, h, w, 1, H, d]
        kv = self.norm1(cand)
        k = self.k(kv).unflatten(-1, (H, d))  # [B, h, w, 4, H, d]
        v = self.v(kv).unflatten(-1, (H, d))
        scores = (q * k).sum(-1) * self.scale  # [B, h, w, 4, H]
        scores = scores.masked_fill(~valid[None, :, :, :, None], float("-inf"))
        attn = (scores.softmax(dim=3).unsqueeze(-1) * v).sum(3).flatten(-2)  # [B, h, w, C]
        out = mean + gate * self.proj(attn)
        return out + gate * self.mlp(self.norm2(out))


class AdaptiveTokenMerger(nn.Module):
    """K weight-shared merge stages; each is the identity once no axis needs merging."""

    def __init__(self, dim: int, num_heads: int, grid: int, stages: int, mlp_ratio: float = 4.0,
                 gated: bool = False):
        super().__init__()
        self.grid = grid
        self.stages = stages
        self.gated = gated
        self.block = GridAttentionBlock(dim, num_heads, mlp_ratio)

    def stage(self, x: torch.Tensor, k: int, h0, w0) -> tuple[torch.Tensor, torch.Tensor]:
        """Iteration k (1-based) on x [B, h, w, C] -> ([B, h', w', C], gate); h0, w0: ATM input grid."""
        _, h, w, _ = x.shape
        nh, nw = self.side_after(h0, k), self.side_after(w0, k)
        r0, r1, rv = cell_index(h, nh, x.device)
        c0, c1, cv = cell_index(w, nw, x.device)
        rows = (x.index_select(1, r0), x.index_select(1, r1))
        cand = torch.stack([r.index_select(2, c) for r in rows for c in (c0, c1)], dim=3)  # [B, h', w', 4, C]
        rv2, cv2 = rv[:, None], cv[None, :]
        real = torch.ones_like(rv2) & torch.ones_like(cv2)  # cell's first token: always real
        valid = torch.stack([real, real & cv2, rv2 & real, rv2 & cv2], dim=-1)  # [h', w', 4], same order
        gate = (rv.any() | cv.any()).to(x.dtype)  # 1 iff some cell holds two real tokens
        if not self.gated:
            return self.block(cand, valid, gate), gate
        # Python bool in eager (cond runs one branch), SymBool under export (cond becomes an ONNX If).
        merges = (nh < h) | (nw < w)
        return self.merge_or_skip(merges, cand, valid, gate), gate

    def merge_or_skip(self, merges, cand: torch.Tensor, valid: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """The block where ``merges``, else each cell's first token (= the block's exact output there).

        Both branches return the flat [B*h'*w'*C] tensor: torch.cond cannot merge the strides of a [B, h', w', C]
        output whose sizes are Min/Max expressions ("not a simple accumulative multiplication of sizes", torch
        2.13), and one dim has stride 1 whatever its size.
        """
        b, h, w, _, c = cand.shape

        def merge(cand, valid, gate):
            return self.block(cand, valid, gate).reshape(-1)

        def skip(cand, valid, gate):
            return cand[:, :, :, 0].reshape(-1)

        return torch.cond(merges, merge, skip, (cand, valid, gate)).view(b, h, w, c)

    def side_after(self, s0, k: int):
        """Side after k iterations, closed form: min(s0, max(G, ceil(s0 / 2^k))).

        Equal to k applications of ``s' = min(s, max(G, ceil(s/2)))`` (nested ceil-halvings are one
        ceil(s0/2^k)). Used instead of iterating the rule on the previous stage's SymInt because the
        nested Min/Max expressions made ``torch.export``'s sympy simplification run for minutes.
        """
        return torch.sym_min(s0, torch.sym_max(self.grid, (s0 + (2**k - 1)) // (2**k)))

    def forward(self, x: torch.Tensor, trace: list | None = None) -> torch.Tensor:
        """x [B, H, W, C] -> [B, min(H, G)', min(W, G)', C]. ``trace`` (eager only) collects per stage
        ``(h, w, active)`` for tests and reports."""
        _, h0, w0, _ = x.shape
        for k in range(1, self.stages + 1):  # fixed trip count: independent of the input size
            x, gate = self.stage(x, k, h0, w0)
            if trace is not None:
                trace.append((x.shape[1], x.shape[2], bool(gate.item())))
        return x


# ----------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------
class ViTAR(ResolutionFlexibleModel):

    def __init__(self, cfg: ViTARConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg.patch_size, 3, cfg.dim)
        self.fpe = FuzzyPositionalEncoding(cfg.dim, cfg.pos_grid)
        self.atm = AdaptiveTokenMerger(cfg.dim, cfg.num_heads, cfg.grid, cfg.merge_stages, cfg.mlp_ratio,
                                       gated=cfg.atm_gate)
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.head = nn.Linear(cfg.dim, cfg.num_classes)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def deploy_spec(self) -> DeploySpec:
        """The ATM caps the backbone grid at G per axis; no class token."""
        return dataclasses.replace(super().deploy_spec(), grid_cap=self.cfg.grid)

    def forward_features(self, x: torch.Tensor, trace: list | None = None) -> torch.Tensor:
        """[B, 3, H, W] -> merged, encoded, normed tokens [B, h*w, C], row-major (h, w = min(tokens, G) per axis)."""
        self.check_input(x)
        x = self.fpe(self.patch_embed(x))  # [B, C, gh, gw]
        x = self.atm(x.permute(0, 2, 3, 1), trace)  # NHWC
        t = x.flatten(1, 2)  # [B, h*w, C]
        for block in self.blocks:
            t = block(t)
        return self.norm(t)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pooling over the merged tokens, then the linear head."""
        pooled = tokens.mean(dim=1)
        return pooled if pre_logits else self.head(pooled)

    def merge_trace(self, x: torch.Tensor) -> list[tuple[int, int, bool]]:
        """Eager instrumentation: per ATM stage, the grid it produced and whether it merged."""
        trace: list = []
        with torch.no_grad():
            self.forward_features(x, trace)
        return trace



register_model("vitar_s", "vitar", ViTAR, ViTARConfig(dim=384, num_heads=6), "ViTAR-S/16 (DeiT-S widths, G=14)")
register_model("vitar_b", "vitar", ViTAR, ViTARConfig(dim=768, num_heads=12), "ViTAR-B/16 (DeiT-B widths, G=14)")
register_model("vitar_test", "vitar", ViTAR, ViTARConfig(dim=32, depth=2, num_heads=2, num_classes=10),
               "tiny ViTAR for tests", test_variant=True)
