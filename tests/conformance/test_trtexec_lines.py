"""Every trtexec line the project emits, parsed against the flag table of the TensorRT version it is meant for
(trtexec_flags.py: facts from sampleOptions.cpp of release/10.3, 10.13 and 11.1, with trtexec's parsing rules).

Sources of lines: ``resvit-export plan`` (JSON, both majors), trtexec.sh (each TRT_MAJOR branch and the commented
inference lines), and build_engine.sh's assembled arguments for every precision and TensorRT version, recorded by
a stand-in trtexec that only writes down its arguments and exits non-zero (it builds nothing).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

import pytest
import trtexec_flags as tf

from resvit_export.errors import UsageError
from resvit_export.profiles import parse_batch, parse_profile
from resvit_export.trt.memory import ModelSpec
from resvit_export.trt.planner import plan_engine
from resvit_export.trt.trtexec import build_command, run_commands, write_trtexec_script

SPEC = ModelSpec("deit", 64, 2, 2)
PROFILES = {"1 profile": ("448-448", "1-1@1"), "3 profiles": ("224-1792", "1-8@1")}
COLUMNS = {10: ("10.3", "10.13"), 11: ("11",)}


def _plan(which: str, precision: str):
    rng, batch = PROFILES[which]
    return plan_engine([parse_profile(rng)], SPEC, batch=parse_batch(batch), precision=precision)


def _assert_accepted(line: str, columns, where: str) -> None:
    for col in columns:
        problems = tf.check_line(line, col)
        assert not problems, f"trtexec {col} rejects {where}: {line}\n  " + "\n  ".join(problems)


def test_the_checker_rejects_what_trtexec_rejects():
    """The rules have teeth: the B1 inference form, TensorRT-10-only flags on 11, an unknown flag, a gap."""
    for col in tf.VERSIONS:
        assert any("missing shape spec at profile index 0" in p for p in tf.check_line(
            "trtexec --loadEngine=m.plan --profile=0 --shapes=pixels:1x3x224x224", col))
        assert tf.check_line("trtexec --loadEngine=m.plan --useProfile=0 --shapes=pixels:1x3x224x224", col) == []
        assert tf.check_line("trtexec --onnx=m.onnx --workspace=64", col)  # removed in 10.0
        assert tf.check_line("trtexec --onnx=m.onnx --profile=1 --minShapes=x:1 --optShapes=x:1 --maxShapes=x:1",
                             col)  # profile 0 missing
    for flag in ("--fp16", "--int8", "--calib=c.cache"):
        assert tf.check_line(f"trtexec --onnx=m.onnx {flag}", "11") and not tf.check_line(
            f"trtexec --onnx=m.onnx {flag}", "10.3")


@pytest.mark.parametrize("which", sorted(PROFILES))
@pytest.mark.parametrize("precision,onnx", [("fp32", "model.rewritten.onnx"), ("fp16", "model.rewritten.onnx"),
                                            ("fp16", "model.fp16.onnx"), ("int8", "model.int8.onnx")])
def test_build_and_inference_lines(which, precision, onnx):
    plan = _plan(which, precision)
    emitted = 0
    for major, columns in COLUMNS.items():
        try:
            line = build_command(plan, onnx, major, workspace_mib=2048, builder_optimization_level=2)
        except UsageError:
            continue  # the combination is refused with advice (tests/trt/test_trtexec.py), nothing is emitted
        emitted += 1
        _assert_accepted(line, columns, f"the build line ({precision}, {onnx}, {which})")
        assert line.count("--profile=") == (len(plan.profiles) if len(plan.profiles) > 1 else 0)
    for line in run_commands(plan):
        _assert_accepted(line, tf.VERSIONS, "the inference line")
    assert emitted, "no TensorRT major accepts this combination"


def test_calibration_cache_line_on_10():
    line = build_command(_plan("3 profiles", "int8"), "model.rewritten.onnx", 10, calib_cache="calib.cache")
    _assert_accepted(line, COLUMNS[10], "the implicit-calibration line")


@pytest.mark.parametrize("which", sorted(PROFILES))
@pytest.mark.parametrize("onnx", ["model.rewritten.onnx", "model.fp16.onnx"])
def test_trtexec_script_branches(tmp_path, which, onnx):
    path = write_trtexec_script(_plan(which, "fp16"), onnx, tmp_path / "trtexec.sh", workspace_mib=1024)
    branch = None
    checked = 0
    for raw in path.read_text().splitlines():
        m = re.match(r"\s+(\d+)\)$", raw)
        if m:
            branch = int(m.group(1))
        elif raw.strip().startswith('"$TRTEXEC"'):
            _assert_accepted(raw.strip(), COLUMNS[branch], f"trtexec.sh branch {branch}")
            checked += 1
        elif raw.startswith("# trtexec "):
            _assert_accepted(raw[2:], tf.VERSIONS, "trtexec.sh inference comment")
            checked += 1
    assert checked >= 2


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_plan_command_lines(precision):
    from click.testing import CliRunner

    from resvit_export.cli.main import cli

    res = CliRunner().invoke(cli, ["plan", "vitar_test", "--profile", "224-1792", "--precision", precision,
                                   "--json", "--workspace", "1024", "--opt-level", "2"])
    assert res.exit_code == 0, res.output
    lines = json.loads(res.stdout)["trtexec"]
    checked = 0
    for major, columns in COLUMNS.items():
        for line in lines[str(major)]:
            if line.startswith("#"):  # "not possible on TensorRT N: ..." advice, not a command
                continue
            _assert_accepted(line, columns if "--loadEngine" not in line else tf.VERSIONS, f"plan {precision}")
            checked += 1
    assert checked >= 2


# --- build_engine.sh -----------------------------------------------------------------------------------------
_RECORDER = '#!/usr/bin/env bash\nprintf "%s\\n" "$(printf "%q " "$@")" >> "$TRTEXEC_LOG"\nexit 1\n'


def _device_dir(tmp_path, which: str, precision: str, onnx_files):
    import time

    from resvit_export.bundle.bundle import create_bundle, extract_bundle
    from resvit_export.status import write_status

    src = tmp_path / "build"
    src.mkdir()
    for name in onnx_files:
        (src / name).write_bytes(b"bytes the recorder never reads")
    (src / "plan.json").write_text(json.dumps(_plan(which, precision).to_dict()))
    write_status(src, "build", "PASSED", started=time.monotonic())  # bundle only takes a PASSED build directory
    return extract_bundle(create_bundle(src, tmp_path / "b.tar.gz").path, tmp_path / "dev")


@pytest.mark.parametrize("which", sorted(PROFILES))
@pytest.mark.parametrize("trt_version", ["10.3.0", "10.13.3", "11.4.1"])
@pytest.mark.parametrize("precision,onnx_files", [
    ("fp32", ["model.rewritten.onnx"]),
    ("fp16", ["model.rewritten.onnx"]),                     # 10: --fp16 on the FP32 graph; 11: refused
    ("fp16", ["model.rewritten.onnx", "model.fp16.onnx"]),  # strongly typed FP16 graph
    ("int8", ["model.rewritten.onnx", "model.int8.onnx", "calib.cache"]),
    ("int8", ["model.rewritten.onnx", "calib.cache"]),       # 10: implicit calibration; 11: refused
])
def test_build_engine_sh_arguments(tmp_path, which, trt_version, precision, onnx_files):
    dest = _device_dir(tmp_path, which, precision, onnx_files)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "trtexec").write_text(_RECORDER)
    (bindir / "python3").write_text(f'#!/usr/bin/env bash\necho "{trt_version}"\n')  # the version it detects
    for f in bindir.iterdir():
        f.chmod(0o755)
    log = tmp_path / "trtexec.log"
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path), "TRTEXEC_LOG": str(log),
           "WORKSPACE_MIB": "2048", "OPT_LEVEL": "2"}
    out = subprocess.run(["bash", str(dest / "build_engine.sh")], cwd=dest, env=env, capture_output=True, text=True)
    if not log.exists():  # refused before trtexec: must say why, with its own exit code
        assert out.returncode == 2 and "TensorRT 11 takes precision from the ONNX" in out.stderr, out.stderr
        assert trt_version.startswith("11")
        return
    assert out.returncode != 0  # the recorder refuses to build, and the script stops there
    line = "trtexec " + log.read_text().strip()
    _assert_accepted(line, (tf.version_column(trt_version),), f"build_engine.sh ({precision}, {onnx_files})")
    args = shlex.split(line)
    weak = f"model.{precision}.onnx" not in onnx_files and precision != "fp32"  # 10.x precision flags
    assert ("--fp16" in args) == weak and ("--int8" in args) == (weak and precision == "int8")
    assert sum(a.startswith("--profile=") for a in args) == (3 if which == "3 profiles" else 0)
    assert os.path.basename(next(a for a in args if a.startswith("--onnx="))[7:]).startswith("model.")
