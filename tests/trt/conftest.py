"""Work-around for the root conftest's marker check (until tests/conftest.py is fixed).

tests/conftest.py skips items with ``"trt" in item.keywords``. Node names are keywords too, so the *directory*
``tests/trt`` makes every test here look TensorRT-marked and skips the pure, CPU-only tests. This hook runs after
the root one and removes that skip again from items below this directory that carry no real ``@pytest.mark.trt``.
Items that are really marked keep their skip (with its reason). The proper fix is
``item.get_closest_marker("trt")`` in tests/conftest.py (diff in the trt/bundle report).
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HERE not in Path(str(item.path)).resolve().parents or item.get_closest_marker("trt") is not None:
            continue
        item.own_markers[:] = [m for m in item.own_markers
                               if not (m.name == "skip" and "TensorRT" in str(m.kwargs.get("reason", "")))]
