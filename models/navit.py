"""NaViT — Patch n' Pack (Dehghani et al., 2023): native-resolution ViT with sequence packing.

Two entry points share every weight:

* ``NaViT.forward(x [B, 3, H, W]) -> logits [B, classes]`` — one image per row, no mask. This is the
  deployable single-image graph (a plain ViT with a dynamic token count).
* ``PackedNaViT(model)(patches, coords, grid_hw, image_ids, image_valid) -> logits [S, E, classes]`` — several
  images of different sizes/aspect ratios packed into each of S sequences of N tokens (NaViT §2.3). Packing is
  done on the host by ``pack_images`` (greedy first-fit, NaViT App. A.3); the graph only sees tensors.

Packed interface (all shapes dynamic: S sequences, N tokens per sequence, E image slots per sequence):

    patches     float [S, N, C*P*P]  patch pixels, flattened in (channel, row-in-patch, col-in-patch) order
                                     (the Conv2d weight layout), exactly what ``patchify`` produces; pads: 0
    coords      int64 [S, N, 2]      (row, col) of each token in its image's patch grid; pads: 0
    grid_hw     int64 [S, N, 2]      (rows, cols) of the patch grid of the token's image (per token, so the
                                     positional embedding needs no gather); pads: 1
    image_ids   int64 [S, N]         image slot 0..E-1 of each token within its sequence; pads: -1
    image_valid bool  [S, E]         slot e of sequence s holds an image (E is read from this shape)

Design choices where the paper is silent (also in the README):

* Positional embedding: factorized **fractional** learned tables φ_y, φ_x ∈ R^{L×D} (L = ``pos_len``, 64 by
  default), summed. The coordinate of a patch is its **centre**, r = (p + 0.5) / side ∈ (0, 1); the table is
  read with linear interpolation at t = r·L − 0.5 (clamped to [0, L−1]) by gathering floor/ceil rows and
  lerping. That is exactly ``F.interpolate(φ, size=side, mode="linear", align_corners=False)`` — timm
  NaFlexViT's factorized mode — but it works per token, so the single-image path (arange coordinates) and the
  packed path (per-token coordinates and per-image sides) use the same function. Centres (rather than p/side)
  make the embedding symmetric under flips and keep r = 0 and r = 1 equally far from the grid.
* Pooling: masked global average pooling, then LayerNorm, then the linear head (timm ``naflexvit_*_gap``).
  The paper's base model uses a MAP head; GAP is a reduce-mean in the graph and needs no extra query.
* Transformer: the project's pre-LN ``Block`` (with biases, no QK-norm); the paper's bias-free/QK-norm changes
  are training-stability details that do not change the export problem.
* Attention mask (packed): token i may attend to token j iff image_ids[i] == image_ids[j]. Pad tokens share id
  −1, so they attend only to pads (never an all-False row, hence no NaN) and no real token ever sees them.
* Token dropping (training only, NaViT §2.2): each image keeps max(1, round(n·(1 − rate))) of its n tokens,
  a uniformly random subset, dropped after the positional embedding is added. In the packed path a dropped
  token is turned into a pad (id −1), which keeps shapes static; host-side dropping before packing (the paper's
  way, which also saves compute) is left to the data loader. Eval mode never drops.
* Minimum side 32 px (2×2 patches), maximum 4096 px; sides follow the project's floor rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from resvit_export.errors import ConfigError, InputSizeError

from .base import ResolutionFlexibleModel
from .contract import ViTConfig
from .layers import Block, PatchEmbed
from .registry import register_model

__all__ = [
    "NaViTConfig",
    "NaViT",
    "PackedNaViT",
    "PackedBatch",
    "pack_images",
    "pack_patches",
    "ImagePatches",
    "unpack_logits",
    "patchify",
    "interp_table",
    "first_fit",
]


@dataclass(frozen=True)
class NaViTConfig(ViTConfig):
    pos_len: int = 64  # length L of each fractional 1-D table (φ_y, φ_x)
    token_drop_rate: float = 0.0  # fraction of each image's tokens dropped in training mode only

    def __post_init__(self):
        super().__post_init__()
        if self.pos_len < 2:
            raise ConfigError(f"pos_len {self.pos_len} must be at least 2")
        if not 0.0 <= self.token_drop_rate < 1.0:
            raise ConfigError(f"token_drop_rate {self.token_drop_rate} must be in [0, 1)")


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, gh*gw, P*P*C] under the floor rule (right/bottom remainder ignored).

    Row-major over the grid; each patch flattened as (channel, row-in-patch, col-in-patch), the layout of a
    Conv2d weight, so ``linear(patchify(x), conv.weight.flatten(1))`` equals the stride-P convolution. Host-side
    helper for ``pack_images``: the single-image graph uses the convolution itself, because the floor-rule crop
    ``x[..., :gh*P]`` makes torch.export guard W == P*(W//P) (narrowing the exported range to multiples of P).
    """
    B, C, H, W = x.shape
    gh, gw = H // patch_size, W // patch_size
    x = x[:, :, : gh * patch_size, : gw * patch_size]
    x = x.reshape(B, C, gh, patch_size, gw, patch_size).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, gh * gw, C * patch_size * patch_size)


def interp_table(table: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Read a 1-D table [L, D] at fractional coordinates r ∈ [0, 1] (any shape) -> [..., D].

    t = r·L − 0.5 clamped to [0, L−1]; gather rows floor(t) and min(floor(t)+1, L−1) and lerp. With patch
    centres r = (p + 0.5)/side this equals ``F.interpolate(table.T[None], side, mode="linear",
    align_corners=False)``. Pure tensor ops: one graph for every size and for packed per-token coordinates.
    """
    L = table.shape[0]
    t = (r.to(table.dtype) * L - 0.5).clamp(0.0, L - 1.0)
    i0 = t.floor()
    w = (t - i0).unsqueeze(-1)
    i0 = i0.to(torch.int64)
    i1 = (i0 + 1).clamp(max=L - 1)
    # F.embedding lowers to a plain ONNX Gather (friendlier to TensorRT than advanced indexing's GatherND)
    return F.embedding(i0, table) * (1.0 - w) + F.embedding(i1, table) * w


def _keep_count(n: torch.Tensor | int, rate: float):
    """Tokens an image of n tokens keeps under token dropping: max(1, round(n·(1 − rate)))."""
    if isinstance(n, torch.Tensor):
        return torch.clamp(torch.round(n.to(torch.float32) * (1.0 - rate)), min=1.0).to(torch.int64)
    return max(1, int(round(n * (1.0 - rate))))


class NaViT(ResolutionFlexibleModel):

    def __init__(self, cfg: NaViTConfig):
        super().__init__()
        self.cfg = cfg
        P = cfg.patch_size
        # stride-P conv (floor rule for free); the packed path applies the same weights as a linear map
        self.patch_embed = PatchEmbed(P, 3, cfg.dim)
        self.pos_y = nn.Parameter(torch.randn(cfg.pos_len, cfg.dim) * 0.02)  # φ_y
        self.pos_x = nn.Parameter(torch.randn(cfg.pos_len, cfg.dim) * 0.02)  # φ_x
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.head = nn.Linear(cfg.dim, cfg.num_classes)

    # -- positional embedding -------------------------------------------------------------------------------
    def pos_embed(self, row: torch.Tensor, col: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Fractional factorized PE of patches at (row, col) in a rows×cols grid (broadcasting tensors):
        φ_y((row + 0.5)/rows) + φ_x((col + 0.5)/cols)."""
        ry = (row.to(torch.float32) + 0.5) / rows.to(torch.float32)
        rx = (col.to(torch.float32) + 0.5) / cols.to(torch.float32)
        return interp_table(self.pos_y, ry) + interp_table(self.pos_x, rx)

    def grid_pos_embed(self, gh, gw) -> torch.Tensor:
        """PE of a full gh×gw grid, row-major: [gh*gw, D]. gh, gw may be symbolic sizes."""
        rows = torch.arange(gh, device=self.pos_y.device)
        cols = torch.arange(gw, device=self.pos_y.device)
        ry = (rows.to(torch.float32) + 0.5) / gh
        rx = (cols.to(torch.float32) + 0.5) / gw
        pe = interp_table(self.pos_y, ry)[:, None, :] + interp_table(self.pos_x, rx)[None, :, :]
        return pe.reshape(-1, self.cfg.dim)

    def embed_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """Pre-patchified pixels [..., C*P*P] -> [..., D] with the patch-embedding conv's weights."""
        proj = self.patch_embed.proj
        return F.linear(patches, proj.weight.flatten(1), proj.bias)

    # -- single-image path ----------------------------------------------------------------------------------
    def _drop_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Training-mode token dropping for [B, n, D]: a random subset of round(n·(1−rate)) per image."""
        B, n, D = x.shape
        keep = _keep_count(n, self.cfg.token_drop_rate)
        idx = torch.rand(B, n, device=x.device).argsort(dim=1)[:, :keep].sort(dim=1).values
        return x.gather(1, idx[:, :, None].expand(B, keep, D))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> transformer output tokens [B, n_kept, D] (no class token; the norm follows pooling)."""
        self.check_input(x)
        x = self.patch_embed(x)  # [B, D, gh, gw]
        gh, gw = x.shape[-2], x.shape[-1]  # symbolic sizes from the conv output: H and W stay dynamic
        tokens = x.flatten(2).transpose(1, 2) + self.grid_pos_embed(gh, gw)
        if self.training and self.cfg.token_drop_rate > 0:  # config, not input size: no graph branch
            tokens = self._drop_tokens(tokens)
        for block in self.blocks:
            tokens = block(tokens)
        return tokens

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pooling over the tokens, LayerNorm, linear head (timm NaFlexViT ``*_gap``)."""
        return self.head_from_pooled(tokens.mean(dim=1), pre_logits)

    def head_from_pooled(self, pooled: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Norm + head on already pooled features [..., D] (the packed path pools per image itself)."""
        pooled = self.norm(pooled)
        return pooled if pre_logits else self.head(pooled)


class PackedNaViT(nn.Module):
    """Packed-sequence view of a NaViT (shares its parameters): see the module docstring for the inputs."""

    def __init__(self, model: NaViT):
        super().__init__()
        self.model = model

    def forward(
        self,
        patches: torch.Tensor,
        coords: torch.Tensor,
        grid_hw: torch.Tensor,
        image_ids: torch.Tensor,
        image_valid: torch.Tensor,
    ) -> torch.Tensor:
        m, cfg = self.model, self.model.cfg
        pdim = cfg.patch_size * cfg.patch_size * 3
        if patches.dim() != 3 or patches.shape[-1] != pdim:
            raise InputSizeError(f"patches must be [S, N, {pdim}], got shape {tuple(patches.shape)}")
        if coords.dim() != 3 or grid_hw.dim() != 3 or image_ids.dim() != 2 or image_valid.dim() != 2:
            raise InputSizeError(
                "expected coords [S, N, 2], grid_hw [S, N, 2], image_ids [S, N], image_valid [S, E]; got "
                f"{tuple(coords.shape)}, {tuple(grid_hw.shape)}, {tuple(image_ids.shape)}, {tuple(image_valid.shape)}"
            )
        E = image_valid.shape[1]
        x = m.embed_patches(patches) + m.pos_embed(coords[..., 0], coords[..., 1], grid_hw[..., 0], grid_hw[..., 1])
        ids = image_ids
        if m.training and cfg.token_drop_rate > 0:
            ids = self._drop_ids(ids, E)
        mask = (ids[:, :, None] == ids[:, None, :]).unsqueeze(1)  # [S, 1, N, N]; pads (-1) see only pads
        for block in m.blocks:
            x = block(x, mask)
        slots = torch.arange(E, device=ids.device)
        onehot = (ids[:, :, None] == slots).to(x.dtype)  # [S, N, E]; pads match no slot
        sums = onehot.transpose(1, 2) @ x  # [S, E, D]; a MatMul rather than an Einsum in the graph
        pooled = sums / onehot.sum(dim=1).clamp(min=1.0)[..., None]
        logits = m.head_from_pooled(pooled)  # [S, E, classes]
        return torch.where(image_valid[..., None], logits, torch.zeros_like(logits))

    def _drop_ids(self, ids: torch.Tensor, E: int) -> torch.Tensor:
        """Training-mode token dropping: per image, tokens outside a random subset of round(n·(1−rate))
        become pads (id −1). Rank of each token among its image's tokens by a random score."""
        score = torch.rand(ids.shape, device=ids.device)
        same = (ids[:, :, None] == ids[:, None, :]) & (ids[:, :, None] >= 0)
        rank = (same & (score[:, None, :] < score[:, :, None])).sum(dim=2)  # [S, N]
        slots = torch.arange(E, device=ids.device)
        counts = (ids[:, :, None] == slots).sum(dim=1)  # [S, E]
        keep = _keep_count(counts, self.model.cfg.token_drop_rate)
        keep_tok = keep.gather(1, ids.clamp(min=0))
        return torch.where((ids >= 0) & (rank < keep_tok), ids, torch.full_like(ids, -1))


# -- host-side packing ----------------------------------------------------------------------------------------
@dataclass
class PackedBatch:
    """Packed inputs for ``PackedNaViT`` plus where each input image went.

    ``index[i] = (sequence, slot)`` of the i-th image given to ``pack_images``.
    """

    patches: torch.Tensor
    coords: torch.Tensor
    grid_hw: torch.Tensor
    image_ids: torch.Tensor
    image_valid: torch.Tensor
    index: torch.Tensor  # int64 [num_images, 2]

    def inputs(self) -> tuple[torch.Tensor, ...]:
        return self.patches, self.coords, self.grid_hw, self.image_ids, self.image_valid

    @property
    def num_images(self) -> int:
        return int(self.index.shape[0])


def first_fit(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Greedy first-fit (NaViT App. A.3): each item, in order, goes to the first bin with room, else a new bin."""
    bins: list[list[int]] = []
    free: list[int] = []
    for i, n in enumerate(lengths):
        if n > capacity:
            raise InputSizeError(f"image {i} has {n} patches, more than max_seq_len {capacity}; "
                                 f"resize it or raise max_seq_len")
        for b, room in enumerate(free):
            if n <= room:
                bins[b].append(i)
                free[b] -= n
                break
        else:
            bins.append([i])
            free.append(capacity - n)
    return bins


@dataclass(frozen=True)
class ImagePatches:
    """One image's tokens before packing: ``patches`` [n, C*P*P] in ``patchify``'s layout, their (row, col) in
    the image's ``grid`` [n, 2], and the grid's (rows, cols). A subset of the grid is allowed (token dropping)."""

    patches: torch.Tensor
    coords: torch.Tensor
    grid: tuple[int, int]

    @classmethod
    def full(cls, image: torch.Tensor, patch_size: int) -> "ImagePatches":
        """Every patch of ``image`` [C, H, W] (floor rule), row-major."""
        gh, gw = image.shape[-2] // patch_size, image.shape[-1] // patch_size
        rr, cc = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        return cls(patchify(image[None], patch_size)[0], torch.stack([rr.reshape(-1), cc.reshape(-1)], dim=-1),
                   (gh, gw))


def pack_patches(items: Sequence[ImagePatches], max_seq_len: int | None = None) -> PackedBatch:
    """Pack images' tokens greedily first-fit into sequences: the one tensor-filling loop behind ``pack_images``
    and any host-side token selection (NaViT's token dropping in ``reference.training``).

    Every sequence is padded to ``max_seq_len`` tokens (default: the longest item) and the slot dimension E to the
    most images any sequence holds.
    """
    if len(items) == 0:
        raise ValueError("pack_patches needs at least one image")
    lengths = [it.patches.shape[0] for it in items]
    capacity = max(lengths) if max_seq_len is None else max_seq_len
    bins = first_fit(lengths, capacity)
    S, N, E = len(bins), capacity, max(len(b) for b in bins)
    patches = torch.zeros(S, N, items[0].patches.shape[1], dtype=items[0].patches.dtype)
    coords = torch.zeros(S, N, 2, dtype=torch.int64)
    grid_hw = torch.ones(S, N, 2, dtype=torch.int64)
    image_ids = torch.full((S, N), -1, dtype=torch.int64)
    image_valid = torch.zeros(S, E, dtype=torch.bool)
    index = torch.zeros(len(items), 2, dtype=torch.int64)
    for s, members in enumerate(bins):
        pos = 0
        for slot, i in enumerate(members):
            it = items[i]
            n = it.patches.shape[0]
            patches[s, pos : pos + n] = it.patches
            coords[s, pos : pos + n] = it.coords
            grid_hw[s, pos : pos + n] = torch.tensor(it.grid)
            image_ids[s, pos : pos + n] = slot
            image_valid[s, slot] = True
            index[i] = torch.tensor([s, slot])
            pos += n
    return PackedBatch(patches, coords, grid_hw, image_ids, image_valid, index)


def pack_images(images: Sequence[torch.Tensor], patch_size: int = 16, max_seq_len: int | None = None) -> PackedBatch:
    """Patchify images ([C, H, W] each, any sizes) and pack them greedily first-fit into sequences.

    Every sequence is padded to ``max_seq_len`` tokens (default: the largest image's token count) and the slot
    dimension E to the most images any sequence holds. Sides follow the floor rule.
    """
    if len(images) == 0:
        raise ValueError("pack_images needs at least one image")
    for i, img in enumerate(images):
        if img.dim() != 3 or img.shape[0] != images[0].shape[0]:
            raise InputSizeError(f"image {i} must be [C, H, W] with the same C as image 0, got shape "
                                 f"{tuple(img.shape)} (image 0: {tuple(images[0].shape)})")
        if img.shape[-2] < patch_size or img.shape[-1] < patch_size:
            raise InputSizeError(f"image {i} of {img.shape[-2]}×{img.shape[-1]} px is smaller than one "
                                 f"{patch_size}×{patch_size} patch")
    return pack_patches([ImagePatches.full(img, patch_size) for img in images], max_seq_len)


def unpack_logits(logits: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
    """[S, E, classes] packed logits -> [num_images, classes] in the order the images were given."""
    logits = torch.as_tensor(logits)
    return logits[batch.index[:, 0], batch.index[:, 1]]


register_model("navit_s", "navit", NaViT, NaViTConfig(dim=384, num_heads=6), "NaViT-S/16, fractional factorized PE")
register_model("navit_b", "navit", NaViT, NaViTConfig(dim=768, num_heads=12), "NaViT-B/16, fractional factorized PE")
register_model("navit_test", "navit", NaViT, NaViTConfig(dim=32, depth=2, num_heads=2, num_classes=10),
               "tiny NaViT for tests", test_variant=True)
