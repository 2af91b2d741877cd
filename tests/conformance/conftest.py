"""Fixtures of the conformance tier (tests/conformance): see trt_wheels.py for what it proves and how."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the modules next to this file (trt_wheels, api_surface, ...)

from trt_wheels import Bindings, compile_stubs, unsupported_reason, find_wheel  # noqa: E402


@pytest.fixture(scope="session")
def bindings(tmp_path_factory):
    """version -> Bindings, prepared once per test session (unpack ~4 MB, compile three tiny libraries)."""
    reason = unsupported_reason()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("trt-bindings")
    stubs: dict[str, Path] = {}
    cache: dict[str, Bindings] = {}

    def get(version: str) -> Bindings:
        if version not in cache:
            wheel = find_wheel(version)
            site = root / version
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(site)
            major = version.split(".")[0]
            if major not in stubs:
                stubs[major] = compile_stubs(root, major)
            cache[version] = Bindings(version, site, stubs[major])
        return cache[version]

    return get
