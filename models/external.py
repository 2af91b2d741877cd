"""Models defined outside this package: ``build --model pkg.module:factory`` and ``build(model=nn.Module)``.

A factory is any callable returning a ``torch.nn.Module`` that meets the model contract (``contract.py``:
``size_rule``, ``forward_features``/``forward_head``, ``deploy_spec()``, ``input_names``/``output_names``).
The module part is imported the way ``python -m`` would (the working directory first on ``sys.path``), or read
from a file when it names one (``examples/my_vit.py:make_model``). ``--set key=value`` pairs become keyword
arguments of the factory (values read as Python literals where they parse, else kept as text).

Everything the registry's models go through applies unchanged: the range check against ``size_rule``, the
graph rewrites, the lint and the parity matrix. What cannot work is refused with one line naming the missing
piece (ModelContractError/UsageError, exit 2) before any file is written.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from resvit_export.errors import UsageError

from .contract import check_contract, deploy_spec_of

__all__ = ["is_factory_spec", "load_factory", "external_model", "adopt_module"]


def is_factory_spec(name: Any) -> bool:
    """``name`` is ``module:factory`` (a registry name never holds a colon)."""
    return isinstance(name, str) and ":" in name


def _import_module(module: str, spec: str):
    if module.endswith(".py") or os.sep in module or "/" in module:
        path = Path(module)
        if not path.is_file():
            raise UsageError(f"--model {spec}: no file {path}")
        mod_name = f"_resvit_external_{path.stem}"
        file_spec = importlib.util.spec_from_file_location(mod_name, path)
        mod = importlib.util.module_from_spec(file_spec)
        sys.modules[mod_name] = mod
        try:
            file_spec.loader.exec_module(mod)
        except Exception as err:
            sys.modules.pop(mod_name, None)
            raise UsageError(f"--model {spec}: importing {path} raised {type(err).__name__}: {err}") from err
        return mod
    added = os.getcwd() not in sys.path
    if added:  # what `python -m` does: the working directory is importable
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise UsageError(f"--model {spec}: cannot import module {module!r} ({err}); run from the folder that "
                         f"holds it, set PYTHONPATH, or give a file path (path/to/file.py:factory)") from err
    except Exception as err:
        raise UsageError(f"--model {spec}: importing {module!r} raised {type(err).__name__}: {err}") from err
    finally:
        if added:
            sys.path.remove(os.getcwd())


def load_factory(spec: str) -> Callable[..., Any]:
    """The callable ``spec`` (``pkg.module:factory`` or ``path/file.py:factory``) names."""
    module, _, attr = spec.rpartition(":")
    if not module or not attr:
        raise UsageError(f"--model {spec!r} must be MODULE:FACTORY, e.g. examples.my_vit:my_vit_tiny")
    obj = _import_module(module, spec)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"--model {spec}: {module} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"--model {spec}: {attr} is a {type(obj).__name__}, not a callable that returns a model")
    return obj


def _literal(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def adopt_module(model: Any, label: str) -> torch.nn.Module:
    """Check the contract (ModelContractError names the first missing piece), stamp ``model_name`` and
    ``family`` the way ``create_model`` does, and put the model in eval mode."""
    check_contract(model)
    spec = deploy_spec_of(model)
    if not getattr(model, "model_name", ""):
        model.model_name = label
    if not getattr(model, "family", ""):
        model.family = spec.family
    return model.eval()


def external_model(spec: str, overrides: dict[str, Any] | None = None, seed: int | None = 0) -> torch.nn.Module:
    """Build the model ``spec`` names: the factory called with ``overrides`` as keyword arguments under
    ``torch.manual_seed(seed)`` (the registry's seeding), checked against the contract."""
    factory = load_factory(spec)
    kwargs = {k: _literal(v) for k, v in (overrides or {}).items()}
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        try:
            model = factory(**kwargs)
        except Exception as err:
            given = f" with --set {', '.join(kwargs)}" if kwargs else ""
            raise UsageError(f"--model {spec}: calling the factory{given} raised {type(err).__name__}: "
                             f"{err}") from err
    return adopt_module(model, spec)
