"""Reference PyTorch models (installed as ``resvit_export.models``).

Importing this package registers every family. Each family module ends with its ``register_model`` calls.
"""

from .base import ResolutionFlexibleModel, SizeRule
from .contract import DeploySpec, ViTConfig, check_contract, fit_to_profiles
from .registry import create_model, get_entry, list_models, parse_overrides, register_model
from .weights import load_weights, save_weights

from . import deit  # noqa: F401  (registers deit_*)

for _family in ("vitar", "resformer", "navit", "rivit"):
    try:  # families land one by one; a missing module must not break the rest of the registry
        __import__(f"{__name__}.{_family}")
    except ModuleNotFoundError as _err:
        if _err.name != f"{__name__}.{_family}":
            raise

__all__ = [
    "ResolutionFlexibleModel",
    "SizeRule",
    "ViTConfig",
    "DeploySpec",
    "check_contract",
    "fit_to_profiles",
    "create_model",
    "get_entry",
    "list_models",
    "parse_overrides",
    "register_model",
    "load_weights",
    "save_weights",
]
