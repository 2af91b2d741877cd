"""Selection: a graph that does not match the reference is never timed; the faster equal graph wins only by a margin."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from .graphs import mlp

pytest.importorskip("onnxruntime")

from resvit_export.cpu.select import select_fastest  # noqa: E402
from resvit_export.validate.parity import default_tolerances  # noqa: E402

SIZES = [(32, 32), (64, 64)]


def _inputs(h, w):
    return np.random.default_rng(h * 1000 + w).standard_normal((2, 3, h, w)).astype(np.float32)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    d = tmp_path_factory.mktemp("select")
    return {"plain": mlp(d / "plain.onnx"), "slow": mlp(d / "slow.onnx", extra_matmuls=4),
            "wrong": mlp(d / "wrong.onnx", flip=True), "twin": mlp(d / "twin.onnx")}


def _reference(path):
    from resvit_export.cpu.session import cpu_session

    sess = cpu_session(path, 1)
    return lambda x: sess.run(None, {"pixels": x})[0]


def _g(name, path):
    return SimpleNamespace(name=name, path=path, note=name)


def test_wrong_graph_fails_parity_and_is_never_timed(graphs):
    sel = select_fastest([_g("slow", graphs["slow"]), _g("wrong", graphs["wrong"]), _g("plain", graphs["plain"])],
                         _reference(graphs["plain"]), _inputs, SIZES, default_tolerances("fp32"), threads=1,
                         rounds=3, also_time={"ref": _reference(graphs["plain"])})
    rows = {r.name: r for r in sel.rows}
    assert not rows["wrong"].passed and rows["wrong"].latency_ms == {}
    assert rows["wrong"].parity["32x32"]["failures"]
    assert sel.baseline == "slow" and sel.winner.name == "plain"  # the useless matmuls cost far more than 3 %
    assert rows["plain"].geo_relative < 0.97 and set(sel.also_timed["ref"]) == {"32x32", "64x64"}
    assert set(sel.to_dict()["winner_relative_to"]["ref"]) == {"32x32", "64x64"}


def test_an_equal_graph_does_not_replace_the_baseline(graphs):
    sel = select_fastest([_g("plain", graphs["plain"]), _g("twin", graphs["twin"])], _reference(graphs["plain"]),
                         _inputs, SIZES, default_tolerances("fp32"), threads=1, rounds=3, min_gain=0.5)
    assert sel.winner.name == "plain"


def test_a_graph_ort_cannot_load_is_reported_not_fatal(graphs, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    sel = select_fastest([_g("plain", graphs["plain"]), _g("broken", broken)], _reference(graphs["plain"]), _inputs,
                         SIZES, default_tolerances("fp32"), threads=1, rounds=1)
    rows = {r.name: r for r in sel.rows}
    assert sel.winner.name == "plain" and not rows["broken"].passed
    assert "ONNX Runtime cannot load it" in rows["broken"].note


def test_no_graph_matching_is_a_parity_error(graphs):
    from resvit_export.errors import ParityError

    with pytest.raises(ParityError, match="no graph matches PyTorch"):  # exit 3 in build, not a traceback
        select_fastest([_g("wrong", graphs["wrong"]), _g("missing", None)], _reference(graphs["plain"]), _inputs,
                       SIZES, default_tolerances("fp32"), threads=1, rounds=1)


def test_a_graph_accept_turns_down_is_never_timed_nor_chosen(graphs):
    from resvit_export.errors import ParityError

    asked = []

    def accept(path):
        asked.append(path.name)
        return "too inaccurate" if path == graphs["slow"] else None

    sel = select_fastest([_g("slow", graphs["slow"]), _g("wrong", graphs["wrong"]), _g("twin", graphs["twin"])],
                         _reference(graphs["plain"]), _inputs, SIZES, default_tolerances("fp32"), threads=1,
                         rounds=1, accept=accept)
    rows = {r.name: r for r in sel.rows}
    assert asked == ["slow.onnx", "twin.onnx"]  # only graphs that passed parity are asked
    assert sel.winner.name == "twin" and not rows["slow"].passed and rows["slow"].latency_ms == {}
    assert rows["slow"].to_dict()["rejected"] == "too inaccurate"
    with pytest.raises(ParityError, match="slow: too inaccurate"):
        select_fastest([_g("slow", graphs["slow"])], _reference(graphs["plain"]), _inputs, SIZES,
                       default_tolerances("fp32"), threads=1, rounds=1, accept=accept)
