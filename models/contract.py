"""The model contract: what any model must offer to go through export, validate, plan and calibrate.

Every registered family implements it through ``ResolutionFlexibleModel`` (``models/base.py``) and a config
derived from ``ViTConfig``; a model defined elsewhere (``build --model pkg.module:factory``, later) must offer
the same pieces, and ``check_contract`` names the first one it lacks.

| piece | type | read by | meaning |
|---|---|---|---|
| ``size_rule`` | ``SizeRule`` | export, validate, plan, calibrate | accepted sides [min_side, max_side], patch size, floor rule: the token grid is ``side // patch`` (``SizeRule.grid(h, w)``) |
| ``forward(x)`` | ``[B, C, H, W] -> [B, classes]`` | export, validate | ``forward_head(forward_features(x))`` |
| ``forward_features(x)`` | ``-> [B, N, C]`` tokens | features, training | the backbone's output tokens (class tokens first where the family has them); normed where the family norms before pooling |
| ``forward_head(t, pre_logits=False)`` | ``[B, N, C] -> [B, classes]`` | training, converters | pool (class token or mean), final norm where the family norms after pooling, head; ``pre_logits=True`` stops before the head |
| ``input_names`` / ``output_names`` | ``tuple[str, ...]`` | export, runners | ONNX binding names: ``("pixels",)`` and ``("logits",)`` |
| ``deploy_spec()`` | ``DeploySpec`` | plan, memory, FLOPs | widths, depth, heads, and the token rule: tokens as a function of H, W for the stem and the backbone, class tokens, stem kind |
| config | ``ViTConfig`` subclass | registry, ``--set`` | common fields and invariants (ConfigError on a bad value, before any work) |
| ``config.deploy_overrides(max_side, runtime_if=)`` | ``dict`` | build, export | overrides fitted to the requested profiles (``fit_to_profiles``): ``max_side`` drops to the largest profile side, which for ViTAR also fixes the ATM stage count; ``runtime_if`` (all targets run an If with run-time branch shapes) lets ViTAR skip idle ATM stages |

The family string has one owner, the registry (``register_model(name, family, ...)``); ``create_model``
stamps ``model_name`` and ``family`` on the instance.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

from resvit_export.errors import ConfigError, ModelContractError

__all__ = ["ViTConfig", "DeploySpec", "check_contract", "deploy_spec_of", "fit_to_profiles", "CONTRACT_PIECES"]


@dataclass(frozen=True)
class ViTConfig:
    """Fields every family shares, with the invariants checked once for all of them.

    Subclasses add their own fields (all with defaults) and extend ``__post_init__`` with their own checks,
    calling ``super().__post_init__()`` first. Every failed check raises ConfigError with one line that names
    the field, its value and the rule, so ``--set depth=-3`` is refused before anything is built.
    """

    dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    patch_size: int = 16
    num_classes: int = 1000
    min_side: int = 32
    max_side: int = 4096

    def __post_init__(self):
        for name in ("dim", "depth", "num_heads", "patch_size", "num_classes", "min_side", "max_side"):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value}")
        if not self.mlp_ratio > 0:
            raise ConfigError(f"mlp_ratio must be > 0, got {self.mlp_ratio}")
        self.check_heads()
        if self.input_patch > self.min_side:
            raise ConfigError(f"min_side {self.min_side} must be at least one patch ({self.input_patch} px)")
        if self.max_side < self.min_side:
            raise ConfigError(f"max_side {self.max_side} must be >= min_side {self.min_side}")

    def check_heads(self) -> None:
        """Heads split the width evenly (families with an explicit head width override this)."""
        if self.dim % self.num_heads:
            raise ConfigError(f"dim {self.dim} must be divisible by num_heads {self.num_heads}")

    @property
    def input_patch(self) -> int:
        """Pixels per token side on the input (the floor rule's unit); a pooling stem overrides it."""
        return self.patch_size

    def deploy_overrides(self, profile_max_side: int, *, runtime_if: bool = False) -> dict[str, Any]:
        """Overrides fitted to the largest side any requested profile allows.

        ``max_side`` is only ever lowered (a profile beyond the model's own maximum must still fail its size
        check). For most families that only tightens the size check; ViTAR derives its ATM stage count from it.
        ``runtime_if``: every deployment target runs an ONNX ``If`` whose branches have run-time shapes, so a
        family may put size-dependent work behind one (ViTAR gates its ATM stages); unused by the others.
        """
        return {"max_side": min(self.max_side, profile_max_side)}


@dataclass(frozen=True)
class DeploySpec:
    """The numbers planning, memory estimates and FLOP counts read from a model, and its token rule.

    Token rule, at an H×W input:
      * stem grid: ``(H // patch_size, W // patch_size)`` (floor rule). For a full-resolution conv stem
        (``stem_channels`` set) ``patch_size`` is only the nominal side used to band profiles by token count.
      * backbone grid: the stem grid, capped per axis at ``grid_cap`` (ViTAR's ATM merges down to G×G), or
        ``fixed_grid``×``fixed_grid`` whatever the input (RIViT pools to a fixed map).
      * backbone tokens: backbone grid + ``cls_tokens`` (class tokens the blocks carry).
    """

    family: str
    dim: int
    depth: int
    num_heads: int
    patch_size: int = 16
    mlp_ratio: float = 4.0
    head_dim: int | None = None  # None: dim // num_heads
    cls_tokens: int = 1
    grid_cap: int | None = None
    fixed_grid: int | None = None
    stem_channels: int | None = None
    name: str = ""

    def __post_init__(self):
        for f in ("dim", "depth", "num_heads", "patch_size"):
            if getattr(self, f) <= 0:
                raise ModelContractError(f"deploy spec {f} must be positive, got {getattr(self, f)}")
        if self.grid_cap is not None and self.fixed_grid is not None:
            raise ModelContractError("deploy spec sets both grid_cap and fixed_grid; a backbone grid has one rule")

    @property
    def hd(self) -> int:
        return self.head_dim or self.dim // self.num_heads

    @property
    def backbone_is_flat(self) -> bool:
        """The backbone's token count is bounded whatever the input size (only the stem grows)."""
        return self.grid_cap is not None or self.fixed_grid is not None

    @property
    def max_backbone_tokens(self) -> int | None:
        """Most tokens the backbone can ever see (None: grows with the input)."""
        side = self.fixed_grid if self.fixed_grid is not None else self.grid_cap
        return None if side is None else side * side + self.cls_tokens

    def stem_grid(self, h: int, w: int) -> tuple[int, int]:
        return max(1, h // self.patch_size), max(1, w // self.patch_size)

    def backbone_grid(self, h: int, w: int) -> tuple[int, int]:
        if self.fixed_grid is not None:
            return self.fixed_grid, self.fixed_grid
        gh, gw = self.stem_grid(h, w)
        if self.grid_cap is not None:
            return min(gh, self.grid_cap), min(gw, self.grid_cap)
        return gh, gw

    def backbone_tokens(self, h: int, w: int) -> int:
        bh, bw = self.backbone_grid(h, w)
        return bh * bw + self.cls_tokens

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_model(cls, model: Any) -> "DeploySpec":
        """``model.deploy_spec()`` after checking the whole contract (ModelContractError names what is missing)."""
        return deploy_spec_of(model)


# (attribute, what it must be) in the order check_contract reports them
CONTRACT_PIECES: tuple[tuple[str, str], ...] = (
    ("size_rule", "a models.SizeRule property (min/max side, patch size, floor rule)"),
    ("forward_features", "a method x [B, C, H, W] -> tokens [B, N, C]"),
    ("forward_head", "a method (tokens, pre_logits=False) -> logits [B, classes]"),
    ("deploy_spec", "a method returning models.DeploySpec (widths, depth, heads, token rule)"),
    ("input_names", "a tuple of ONNX input names, e.g. ('pixels',)"),
    ("output_names", "a tuple of ONNX output names, e.g. ('logits',)"),
)


def check_contract(model: Any) -> None:
    """Raise ModelContractError naming the first contract piece ``model`` lacks (see the module table)."""
    import torch

    label = getattr(model, "model_name", "") or type(model).__name__
    if not isinstance(model, torch.nn.Module):
        raise ModelContractError(f"{label} is not a torch.nn.Module; resvit-export exports nn.Module models only")
    for attr, what in CONTRACT_PIECES:
        try:
            value = getattr(model, attr)
        except (AttributeError, NotImplementedError):
            value = None
        if value is None:
            raise ModelContractError(
                f"{label} does not meet the model contract: it has no `{attr}` ({what}); "
                f"see resvit_export/models/contract.py"
            )


def deploy_spec_of(model: Any) -> DeploySpec:
    """The model's DeploySpec after checking the whole contract."""
    check_contract(model)
    spec = model.deploy_spec()
    if not isinstance(spec, DeploySpec):
        raise ModelContractError(f"{type(model).__name__}.deploy_spec() returned {type(spec).__name__}, "
                                 f"not a models.DeploySpec")
    return spec


def fit_to_profiles(model_name: str, profiles: Sequence, overrides: dict[str, Any], *,
                    runtime_if: bool = False) -> dict[str, Any]:
    """``overrides`` plus the config's deploy-time overrides fitted to ``profiles``; the user's values win.

    ``profiles`` are ``ResolutionProfile``s (anything with a ``max`` (h, w) pair). Example: vitar_s with
    ``--profile 224-640`` gets ``max_side=640``, so its graph runs 2 ATM stages instead of 5: the stages
    beyond what the profile needs are exact identities with shared weights, so outputs over the profile are
    bit-identical and the model is cheaper (vitar_s at 224 px: 14.4 GFLOPs with 5 stages, 11.2 with 2).
    ``runtime_if=True`` (every target accepts an If with run-time branch shapes, ``graph.rules.accepts_runtime_if``)
    also lets ViTAR skip the stages an input does not need (``atm_gate``): 9.2 GFLOPs at 224 px.
    """
    from .registry import get_entry

    out = dict(overrides)
    if not profiles:
        return out
    config = get_entry(model_name).config
    fitted = config.deploy_overrides(max(max(p.max) for p in profiles), runtime_if=runtime_if)
    for key, value in fitted.items():
        out.setdefault(key, value)
    return out
