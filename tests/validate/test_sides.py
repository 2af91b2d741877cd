"""Both sides of a parity check: each feed runs once per side, concurrently or not, with the same results."""

import math
import time

import numpy as np
import pytest
import torch

from resvit_export.errors import InvalidArtifactError
from resvit_export.validate.sides import run_both_sides, warm_latency

from .test_runners import _matmul_onnx


def test_warm_latency_skips_each_shapes_first_run():
    shapes = ["a", "a", "b", "c", "c", "c"]
    secs = [5.0, 1.0, 3.0, 4.0, 2.0, float("nan")]
    lat, all_warm = warm_latency(shapes, secs)
    assert lat == [1.0, 1.0, 3.0, 2.0, 2.0, 2.0]  # b ran once: its only (cold) time is kept
    assert all_warm is False
    assert warm_latency(["a", "a"], [2.0, 1.5]) == ([1.5, 1.5], True)


@pytest.fixture(scope="module")
def mm(tmp_path_factory):
    """y = tanh(x @ w) @ w2 as ONNX and as the same torch function."""
    import onnx
    from onnx import numpy_helper

    path = _matmul_onnx(tmp_path_factory.mktemp("sides") / "mm.onnx")
    w = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in onnx.load(str(path)).graph.initializer}
    return path, lambda x: torch.tanh(x @ w["w"]) @ w["w2"]


@pytest.mark.parametrize("concurrent", [True, False])
@pytest.mark.parametrize("isolated", [False, True])
def test_each_feed_runs_once_per_side_and_both_sides_agree(mm, concurrent, isolated):
    path, fn = mm
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((b, 64)).astype(np.float32) for b in (1, 1, 3)]
    calls, seen = [], []
    runs = run_both_sides(lambda j: calls.append(j) or fn(torch.from_numpy(xs[j])), path, [{"x": x} for x in xs],
                          isolated=isolated, threads=1, concurrent=concurrent, label=lambda j: f"feed{j}",
                          progress=seen.append)
    assert calls == [0, 1, 2]  # once each, in order
    assert len(runs.ref) == len(runs.got) == len(runs.ref_s) == len(runs.got_s) == 3 and not runs.ort_errors
    for ref, got in zip(runs.ref, runs.got):
        np.testing.assert_allclose(ref[0], got["y"], rtol=1e-5, atol=1e-5)
    assert all(s > 0 for s in runs.ref_s + runs.got_s)
    assert sorted(seen) == sorted([f"pytorch feed{j}" for j in range(3)] + [f"onnxruntime feed{j}" for j in range(3)])


def test_an_artifact_that_cannot_load_stops_the_reference_early(tmp_path, mm):
    _, fn = mm
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf")
    calls = []

    def slow_forward(j):
        calls.append(j)
        time.sleep(0.05)
        return fn(torch.zeros(1, 64))

    with pytest.raises(InvalidArtifactError, match="cannot load"):
        run_both_sides(slow_forward, bad, [{"x": np.zeros((1, 64), np.float32)}] * 100, isolated=False, threads=1)
    assert len(calls) < 100


def test_a_feed_onnx_runtime_rejects_is_recorded_not_raised(mm):
    path, fn = mm
    feeds = [{"x": np.ones((1, 64), np.float32)}, {"x": np.ones((1, 63), np.float32)}]
    runs = run_both_sides(lambda j: fn(torch.ones(1, 64)), path, feeds, isolated=False, threads=1)
    assert list(runs.ort_errors) == [1] and runs.got[1] == {} and math.isnan(runs.got_s[1])


def test_on_demand_makes_each_item_once_whoever_asks_first():
    import threading

    from resvit_export.validate.sides import OnDemand

    made = []
    items = OnDemand(5, lambda j: made.append(j) or j * 10)
    threads = [threading.Thread(target=lambda: [items[j] for j in range(5)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(made) == [0, 1, 2, 3, 4] and list(items) == [0, 10, 20, 30, 40] and len(items) == 5


def test_reference_device_is_cuda_only_where_torch_sees_a_gpu(monkeypatch):
    import torch

    from resvit_export.errors import UsageError
    from resvit_export.validate.parity import pick_reference_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_reference_device() == "cpu"
    with pytest.raises(UsageError, match="sees no CUDA GPU"):
        pick_reference_device("cuda")
    with pytest.raises(UsageError, match="unknown reference device"):
        pick_reference_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_reference_device() == "cuda" and pick_reference_device("cpu") == "cpu"
