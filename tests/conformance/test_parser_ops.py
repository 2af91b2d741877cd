"""The lint's per-target op lists and opset limits against onnx-tensorrt's operator matrices.

data/onnx_tensorrt_operators.json is an independent transcription of the matrices (8.5-GA, 10.1-GA, 10.15,
11.1) and of the changelog entries that date operators between them. A target with no matrix of its own must
equal the nearest older matrix plus the arrivals up to it, and (where the arrivals are complete, from 10.1 on)
the nearest newer matrix minus the arrivals after it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resvit_export.graph.rules import get_rule
from resvit_export.graph.trt_ops import TARGETS

DATA = json.loads((Path(__file__).parent / "data" / "onnx_tensorrt_operators.json").read_text())


def _v(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


MATRICES = {_v(k): m for k, m in DATA["matrices"].items()}
ARRIVALS = [(_v(a["version"]), a["op"]) for a in DATA["arrivals"]]
ARRIVALS_COMPLETE_FROM = (10, 1)


def _arrived(after: tuple[int, ...], upto: tuple[int, ...]) -> set[str]:
    return {op for v, op in ARRIVALS if after < v <= upto}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_ops_match_the_matrices(name):
    target = TARGETS[name]
    version = target.trt_version
    lower = max(v for v in MATRICES if v <= version)
    expected = set(MATRICES[lower]["Y"]) | _arrived(lower, version)
    assert set(target.ops) == expected, (
        f"{name} (TensorRT {target.version_str}) vs {MATRICES[lower]['source']} + dated arrivals: "
        f"extra {sorted(set(target.ops) - expected)}, missing {sorted(expected - set(target.ops))}")
    newer = [v for v in MATRICES if v > version]
    if newer and lower >= ARRIVALS_COMPLETE_FROM:
        upper = min(newer)
        from_above = set(MATRICES[upper]["Y"]) - _arrived(version, upper)
        assert set(target.ops) == from_above, (
            f"{name}: {MATRICES[upper]['source']} minus later arrivals disagrees: "
            f"extra {sorted(set(target.ops) - from_above)}, missing {sorted(from_above - set(target.ops))}")


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_no_target_supports_an_op_its_matrix_marks_unsupported(name):
    version = TARGETS[name].trt_version
    lower = max(v for v in MATRICES if v <= version)
    still_unsupported = set(MATRICES[lower]["N"]) - _arrived(lower, version)
    assert not set(TARGETS[name].ops) & still_unsupported


@pytest.mark.parametrize("name,matrix", [("jetpack5", "8.5"), ("jetpack6", "10.1"), ("trt10", "10.15"),
                                         ("trt11", "11.1")])
def test_max_opset_is_the_documented_one(name, matrix):
    # jetpack7 (10.13) is not here: its matrix was not reachable, so 22 is a recommendation (trt_ops.py says why)
    assert TARGETS[name].max_opset == DATA["matrices"][matrix]["max_opset"]


def test_version_bounded_rules_follow_the_dated_arrivals():
    attention = next(v for v, op in ARRIVALS if op == "Attention")
    assert get_rule("TRT002").max_trt == attention[:2]
