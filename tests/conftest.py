"""Shared test setup: gpu/trt markers skip with the reason printed when the hardware or library is absent."""

from __future__ import annotations

import importlib.util

import pytest
import torch


def _trt_status() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed (pip stubs cannot fetch it here; see README 'What ran where')"
    if not torch.cuda.is_available():
        return "TensorRT is installed but no CUDA device is visible"
    return None


def pytest_addoption(parser):
    parser.addoption("--reverse", action="store_true",
                     help="run the tests in reverse order (shows that none depends on another having run first)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--reverse"):
        items.reverse()
    trt_reason = _trt_status()
    gpu_reason = None if torch.cuda.is_available() else "no CUDA device on this machine"
    for item in items:
        if item.get_closest_marker("trt") and trt_reason:
            item.add_marker(pytest.mark.skip(reason=trt_reason))
        elif item.get_closest_marker("gpu") and gpu_reason:
            item.add_marker(pytest.mark.skip(reason=gpu_reason))


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
