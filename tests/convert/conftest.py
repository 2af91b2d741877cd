"""timm as the reference implementation, with a stand-in torchvision that exists only during these tests.

timm imports torchvision at import time, and torchvision has no CPU wheel this project can pin; timm is
installed ``--no-deps`` (make install). Nothing timm computes here goes through torchvision.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types

import pytest


class _Stub:
    """Any attribute, call, index or base class taken from the stand-in torchvision."""

    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        return _Stub()

    def __call__(self, *args, **kwargs):
        return _Stub()

    def __getitem__(self, key):
        return _Stub()

    def __mro_entries__(self, bases):
        return (object,)


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Stub()


_TORCHVISION = ("torchvision", "torchvision.ops", "torchvision.ops.misc", "torchvision.transforms",
                "torchvision.transforms.functional", "torchvision.transforms.v2", "torchvision.datasets",
                "torchvision.io")


@pytest.fixture(scope="module")
def timm():
    if importlib.util.find_spec("timm") is None:  # locate only: importing needs the stand-in below
        pytest.skip("timm is not installed (make install installs it --no-deps)")
    saved = {n: sys.modules.get(n) for n in _TORCHVISION}
    for name in _TORCHVISION:
        mod = _StubModule(name)
        mod.__path__ = []
        mod.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        sys.modules[name] = mod
    sys.modules["torchvision"].__version__ = "0.0.0"
    try:
        import timm as timm_module

        yield timm_module
    finally:
        for name in [n for n in sys.modules if n == "timm" or n.startswith("timm.")]:
            del sys.modules[name]
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod
