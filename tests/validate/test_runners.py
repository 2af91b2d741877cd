"""ONNX Runtime runners: in-process and isolated agree; failures and crashes become InvalidArtifactError.

The crash test exercises the real isolated path: the real child (``python -m resvit_export.validate.runners``)
is started by ``run_onnx_timed`` and, while it is running the model, the test sends it SIGSEGV with os.kill.
(No checker-valid graph that crashes ONNX Runtime 1.31 was found in the time available, so the signal is
delivered from outside rather than raised by ORT itself; the parent-side mapping is identical.)
"""

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from resvit_export.errors import InvalidArtifactError
from resvit_export.validate.runners import _raise_for_child, onnx_io_names, run_onnx, run_onnx_timed


def _matmul_onnx(path: Path, k: int = 64, n: int = 10, depth: int = 1) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((k, k)) / np.sqrt(k)).astype(np.float32), "w")
    w2 = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "w2")
    nodes, cur = [], "x"
    for i in range(depth):  # the square weight is shared, so depth adds compute, not file size
        nodes += [helper.make_node("MatMul", [cur, "w"], [f"h{i}"]), helper.make_node("Tanh", [f"h{i}"], [f"t{i}"])]
        cur = f"t{i}"
    nodes.append(helper.make_node("MatMul", [cur, "w2"], ["y"]))
    graph = helper.make_graph(nodes, "mm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n])], [w, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    return _matmul_onnx(tmp_path_factory.mktemp("runners") / "mm.onnx")


def test_in_process_and_isolated_agree(small_onnx):
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((b, 64)).astype(np.float32)} for b in (1, 3, 8)]
    a, ta = run_onnx_timed(small_onnx, feeds, repeats=2)
    b, tb = run_onnx_timed(small_onnx, feeds, isolated=True, repeats=2)
    assert [sorted(r) for r in a] == [["y"]] * 3
    for ra, rb, f in zip(a, b, feeds):
        assert ra["y"].shape == (f["x"].shape[0], 10)
        np.testing.assert_array_equal(ra["y"], rb["y"])
    assert len(ta) == len(tb) == 3 and all(t > 0 for t in ta + tb)
    assert onnx_io_names(small_onnx) == (["x"], ["y"])
    np.testing.assert_array_equal(run_onnx(small_onnx, feeds[:1])[0]["y"], a[0]["y"])


@pytest.mark.parametrize("isolated", [False, True])
def test_unloadable_and_failing_models(tmp_path, small_onnx, isolated):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf")
    with pytest.raises(InvalidArtifactError, match="cannot load"):
        run_onnx(bad, [{"x": np.zeros((1, 64), np.float32)}], isolated=isolated)
    with pytest.raises(InvalidArtifactError, match=r"feed 1 \(x 2x63\)"):
        run_onnx(small_onnx, [{"x": np.zeros((1, 64), np.float32)}, {"x": np.zeros((2, 63), np.float32)}],
                 isolated=isolated)
    with pytest.raises(InvalidArtifactError, match="does not exist"):
        run_onnx(tmp_path / "missing.onnx", [], isolated=isolated)


def _children_running_runner() -> list[tuple[int, list[str]]]:
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == me and b"resvit_export.validate.runners" in argv:
            found.append((int(entry.name), [a.decode() for a in argv if a]))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the child")
def test_child_crash_becomes_invalid_artifact_error(tmp_path):
    onnx_path = _matmul_onnx(tmp_path / "slow.onnx", k=512, depth=64)
    feeds = [{"x": np.ones((128, 512), np.float32)} for _ in range(100)]  # ~100 ms per feed: seconds of work
    killed = {}

    def killer():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for pid, argv in _children_running_runner():
                phase_file = Path(argv[argv.index("--child") + 4])
                if phase_file.is_file() and phase_file.read_text().startswith("running"):
                    killed["pid"] = pid
                    os.kill(pid, signal.SIGSEGV)
                    return
            time.sleep(0.02)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    with pytest.raises(InvalidArtifactError) as info:
        run_onnx_timed(onnx_path, feeds, isolated=True, repeats=1)
    t.join(5)
    msg = str(info.value)
    assert "pid" in killed
    assert "ONNX Runtime crashed (signal 11, SIGSEGV) while running (running feed" in msg
    assert str(onnx_path) in msg and "\n" not in msg


def test_exit_status_mapping():
    _raise_for_child(0, "", "m.onnx", "done")
    with pytest.raises(InvalidArtifactError, match=r"crashed \(signal 6, SIGABRT\) while loading m.onnx"):
        _raise_for_child(-6, "", "m.onnx", "loading")
    with pytest.raises(InvalidArtifactError, match="boom"):
        _raise_for_child(1, "Traceback...\nInvalidArtifactError: boom\n", "m.onnx", "running feed 0")
    with pytest.raises(InvalidArtifactError, match=r"exit 1\) while running"):
        _raise_for_child(1, "MemoryError\n", "m.onnx", "running feed 0")


@pytest.mark.parametrize("isolated", [False, True])
def test_keep_going_records_a_failing_feed(small_onnx, isolated):
    feeds = [{"x": np.ones((1, 64), np.float32)}, {"x": np.ones((2, 63), np.float32)},
             {"x": np.ones((3, 64), np.float32)}]
    errors: list = []
    out, secs = run_onnx_timed(small_onnx, feeds, isolated=isolated, repeats=1, errors=errors)
    assert [i for i, _ in errors] == [1] and "feed 1 (x 2x63)" in errors[0][1]
    assert out[1] == {} and np.isnan(secs[1])
    assert out[0]["y"].shape == (1, 10) and out[2]["y"].shape == (3, 10)
