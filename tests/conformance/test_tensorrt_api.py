"""The project's TensorRT names against NVIDIA's real bindings of every targeted version (see trt_wheels.py).

A renamed or removed API fails here with the TensorRT version in the test id and in the message.
"""

from __future__ import annotations

import json

import pytest

from trt_wheels import VERSIONS


@pytest.mark.parametrize("version", VERSIONS)
def test_api_surface_and_project_code(bindings, version):
    """Names, kinds and pybind11 signatures of every API in api_surface.py; versions.API_FEATURES claims; and the
    builder/runners run against the module up to the NULL factory (no engine is ever created)."""
    proc = bindings(version).run("tests/conformance/api_probe.py")
    assert proc.returncode == 0, f"TensorRT {version}: probe crashed\n{proc.stderr[-4000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["version"] == version
    assert result["checked"] > 70
    assert not result["failures"], f"TensorRT {version}:\n  " + "\n  ".join(result["failures"])


# The modules that call TensorRT. A name, argument count/keyword or property/method mix-up in any of them is a
# mypy error against the stubs of the real module of that version.
TRT_FACING = ("resvit_export/trt/builder.py", "resvit_export/trt/runner.py",
              "resvit_export/bundle/device/run_engine.py", "resvit_export/bundle/device/profile_select.py")
_MYPY_INI = """[mypy]
python_version = 3.11
follow_imports = silent
ignore_missing_imports = True
[mypy-tensorrt.*]
ignore_errors = True
"""


@pytest.mark.parametrize("version", VERSIONS)
def test_trt_facing_modules_type_check_against_the_real_module(bindings, version, tmp_path):
    import os
    import subprocess
    import sys

    from trt_wheels import REPO, write_type_stubs

    stubs = write_type_stubs(bindings(version), tmp_path)
    ini = tmp_path / "mypy.ini"
    ini.write_text(_MYPY_INI)
    env = dict(os.environ, MYPYPATH=str(stubs))
    cache = REPO / ".cache" / "conformance" / f"mypy-{version}"
    proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ini), "--cache-dir", str(cache),
                           "--no-error-summary", *TRT_FACING], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, \
        f"TensorRT {version} (type check against its real bindings):\n{proc.stdout}{proc.stderr}"


def test_polygraphy_citations_match_the_locked_source():
    """Each Polygraphy entry of api_surface.py cites file:line + the code found there; re-read it in the installed
    Polygraphy, which must be the locked version (an upgrade moves lines: re-check the calls, then the table)."""
    import re
    from importlib import metadata
    from pathlib import Path

    import api_surface
    import polygraphy

    from trt_wheels import REPO

    locked = next(line.split("==")[1] for line in (REPO / "constraints.txt").read_text().splitlines()
                  if line.startswith("polygraphy=="))
    assert metadata.version("polygraphy") == locked, "installed Polygraphy is not the locked one: run make install"
    root = Path(polygraphy.__file__).parent.parent
    wrong = []
    for api in api_surface.POLYGRAPHY:
        path, line, snippet = re.match(r"(\S+):(\d+) (.*)", api.where).groups()
        text = (root / path).read_text().splitlines()[int(line) - 1]
        if snippet not in text:
            wrong.append(f"{api.name}: {path}:{line} reads {text.strip()!r}, not {snippet!r}")
    assert not wrong, "\n".join(wrong)
