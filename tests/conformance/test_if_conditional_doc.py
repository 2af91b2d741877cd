"""What NVIDIA's real bindings say about an If whose branches have different shapes (lint TRT018, ViTAR atm_gate).

The project follows NvInfer.h and the 10.11.0 release notes: from 10.11 the branches may differ in shape at run
time (same rank). The bindings' own IIfConditional docstring kept the 10.10 wording through 11.4. This test pins
both facts, so a bindings release that changes either (or a rule edit that forgets them) is seen here.
"""

from __future__ import annotations

import pytest

from resvit_export.graph.rules import accepts_runtime_if, get_rule
from trt_wheels import VERSIONS

CONSTANT_EXCEPTION = "the shapes are allowed to differ if the condition is a build-time constant"


@pytest.mark.parametrize("version", VERSIONS)
def test_if_conditional_docstring_and_the_project_rule(bindings, version):
    proc = bindings(version).run("-c", "import tensorrt_bindings as trt; print(trt.IIfConditional.__doc__)")
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = " ".join(proc.stdout.split())
    major_minor = tuple(int(x) for x in version.split(".")[:2])
    if major_minor < (10, 11):
        assert "true/false subgraphs are the same." in doc and CONSTANT_EXCEPTION not in doc
        assert not accepts_runtime_if(major_minor)
    else:
        # the docstring lags the header: the project's choice rests on NvInfer.h + release notes, cited in TRT018
        assert CONSTANT_EXCEPTION in doc
        assert accepts_runtime_if(major_minor)
        assert "release notes" in get_rule("TRT018").source
