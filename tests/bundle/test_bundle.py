"""Bundles: create/verify/extract, malicious archives, tampering, and the device-side scripts."""

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from resvit_export.bundle.bundle import SUMS_NAME, create_bundle, extract_bundle, verify_bundle
from resvit_export.errors import InvalidArtifactError, OutputDirError, UsageError
from resvit_export.profiles import parse_batch, parse_profile
from resvit_export.status import write_status
from resvit_export.trt.manifest import build_manifest, write_manifest
from resvit_export.trt.memory import ModelSpec
from resvit_export.trt.planner import plan_engine

DEVICE = Path(__file__).resolve().parents[2] / "resvit_export" / "bundle" / "device"


@pytest.fixture
def build_dir(tmp_path):
    d = tmp_path / "build"
    d.mkdir()
    for name, data in (("model.onnx", b"raw"), ("model.rewritten.onnx", b"fp32"), ("model.fp16.onnx", b"fp16"),
                       ("model.int8.onnx", b"int8"), ("calibration.cache", b"cal"), ("trtexec.sh", b"#!/bin/sh\n"),
                       ("parity.md", b"not bundled")):
        (d / name).write_bytes(data)
    plan = plan_engine([parse_profile("224-1024")], ModelSpec("deit", 32, 2, 2), batch=parse_batch("1-4@1"))
    (d / "plan.json").write_text(json.dumps(plan.to_dict()))
    write_manifest(build_manifest(plan, {"onnx": [d / "model.fp16.onnx"], "plan": [d / "plan.json"]}, d),
                   d / "manifest.json")
    write_status(d, "build", "PASSED", started=time.monotonic())
    return d


def test_create_verify_extract(build_dir, tmp_path):
    info = create_bundle(build_dir, tmp_path / "b.tar.gz")
    assert info.precisions == ["fp16", "fp32", "int8"]
    assert {"model.fp16.onnx", "model.int8.onnx", "model.rewritten.onnx", "plan.json", "trtexec.sh", "manifest.json",
            "calibration.cache", "build_engine.sh", "run_engine.py", "profile_select.py", "README.txt", "profiles.env",
            SUMS_NAME} <= set(info.files)
    assert "parity.md" not in info.files
    assert set(verify_bundle(info.path)) == set(info.files)
    dest = extract_bundle(info.path, tmp_path / "x")
    assert (dest / "model.fp16.onnx").read_bytes() == b"fp16"
    assert os.access(dest / "build_engine.sh", os.X_OK)
    env = (dest / "profiles.env").read_text()
    assert "PRECISION=fp16" in env and "--profile=1 --minShapes=pixels:1x3x224x224" in env
    # sha256sum-compatible, so the device can check it without resvit-export
    first = (dest / SUMS_NAME).read_text().splitlines()[0]
    digest, name = first.split("  ")
    assert hashlib.sha256((dest / name).read_bytes()).hexdigest() == digest
    assert not list(tmp_path.glob(".*partial*"))


def test_refusals(build_dir, tmp_path):
    create_bundle(build_dir, tmp_path / "b.tar.gz")
    with pytest.raises(OutputDirError):
        create_bundle(build_dir, tmp_path / "b.tar.gz")
    create_bundle(build_dir, tmp_path / "b.tar.gz", force=True)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(OutputDirError):
        extract_bundle(tmp_path / "b.tar.gz", tmp_path / "full")
    (build_dir / "plan.json").unlink()
    with pytest.raises(UsageError, match="plan.json"):
        create_bundle(build_dir, tmp_path / "c.tar.gz")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="no .onnx"):
        create_bundle(empty, tmp_path / "d.tar.gz")
    (tmp_path / "notar.tar.gz").write_bytes(b"garbage")
    with pytest.raises(InvalidArtifactError, match="not a readable bundle"):
        verify_bundle(tmp_path / "notar.tar.gz")


def test_symlinked_source_refused(build_dir, tmp_path):
    (build_dir / "evil.onnx").symlink_to("/etc/passwd")
    with pytest.raises(InvalidArtifactError, match="symlink"):
        create_bundle(build_dir, tmp_path / "b.tar.gz")


def _rewrite(src, dst, mutate):
    """Copy archive src to dst, letting ``mutate(tar_out, members_with_data)`` add/replace members."""
    with tarfile.open(src) as tin:
        items = [(m, tin.extractfile(m).read() if m.isreg() else None) for m in tin.getmembers()]
    with tarfile.open(dst, "w:gz") as tout:
        mutate(tout, items)
    return dst


def _add(tout, name, data=b"", **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for k, v in attrs.items():
        setattr(info, k, v)
    tout.addfile(info, io.BytesIO(data) if info.isreg() else None)


@pytest.mark.parametrize("kind,needle", [
    ("dotdot", "escapes the destination"), ("absolute", "absolute path"), ("symlink", "symlink"),
    ("hardlink", "hardlink"), ("device", "not a regular file"), ("duplicate", "appears twice"),
])
def test_malicious_archives_are_rejected_before_writing(build_dir, tmp_path, kind, needle):
    good = create_bundle(build_dir, tmp_path / "good.tar.gz").path

    def mutate(tout, items):
        for m, data in items:
            tout.addfile(m, io.BytesIO(data))
        if kind == "dotdot":
            _add(tout, "../escape.txt", b"pwned")
        elif kind == "absolute":
            _add(tout, "/tmp/resvit-abs.txt", b"pwned")
        elif kind == "symlink":
            _add(tout, "link", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        elif kind == "hardlink":
            _add(tout, "hard", type=tarfile.LNKTYPE, linkname="/etc/passwd")
        elif kind == "device":
            _add(tout, "dev", type=tarfile.CHRTYPE)
        elif kind == "duplicate":
            _add(tout, "plan.json", b"{}")

    bad = _rewrite(good, tmp_path / "bad.tar.gz", mutate)
    with pytest.raises(InvalidArtifactError, match=needle):
        verify_bundle(bad)
    with pytest.raises(InvalidArtifactError, match=needle):
        extract_bundle(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.txt").exists()
    assert not Path("/tmp/resvit-abs.txt").exists()


def test_tampered_file_is_detected(build_dir, tmp_path):
    good = create_bundle(build_dir, tmp_path / "good.tar.gz").path

    def mutate(tout, items):
        for m, data in items:
            if m.name == "model.fp16.onnx":
                data = b"trojan"
                m.size = len(data)
            tout.addfile(m, io.BytesIO(data))

    bad = _rewrite(good, tmp_path / "bad.tar.gz", mutate)
    with pytest.raises(InvalidArtifactError, match="model.fp16.onnx was modified"):
        verify_bundle(bad)
    with pytest.raises(InvalidArtifactError):
        extract_bundle(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unlisted_and_missing_files_are_detected(build_dir, tmp_path):
    good = create_bundle(build_dir, tmp_path / "good.tar.gz").path

    def add_extra(tout, items):
        for m, data in items:
            tout.addfile(m, io.BytesIO(data))
        _add(tout, "extra.sh", b"rm -rf ~")

    with pytest.raises(InvalidArtifactError, match="extra.sh is not listed"):
        verify_bundle(_rewrite(good, tmp_path / "a.tar.gz", add_extra))

    def drop(tout, items):
        for m, data in items:
            if m.name != "plan.json":
                tout.addfile(m, io.BytesIO(data))

    with pytest.raises(InvalidArtifactError, match="plan.json is listed in SHA256SUMS but missing"):
        verify_bundle(_rewrite(good, tmp_path / "b.tar.gz", drop))

    def no_sums(tout, items):
        for m, data in items:
            if m.name != SUMS_NAME:
                tout.addfile(m, io.BytesIO(data))

    with pytest.raises(InvalidArtifactError, match="no SHA256SUMS"):
        verify_bundle(_rewrite(good, tmp_path / "c.tar.gz", no_sums))


def test_device_scripts_are_syntactically_valid():
    subprocess.run(["bash", "-n", str(DEVICE / "build_engine.sh")], check=True)
    subprocess.run([sys.executable, "-m", "py_compile", str(DEVICE / "run_engine.py")], check=True)


def test_run_engine_imports_and_helps_without_torch_or_tensorrt(tmp_path):
    code = ("import sys; sys.modules['torch'] = None; sys.modules['tensorrt'] = None; "
            "import importlib.util as u; s = u.spec_from_file_location('run_engine', sys.argv[1]); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); "
            "assert m.select_profile([((1,3,224,224),(1,3,336,336),(1,3,512,512)),"
            "((1,3,224,224),(1,3,720,720),(1,3,1024,1024))], (1,3,600,600)) == 1; print('ok')")
    out = subprocess.run([sys.executable, "-c", code, str(DEVICE / "run_engine.py")], capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr
    out = subprocess.run([sys.executable, str(DEVICE / "run_engine.py"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--shape" in out.stdout
    # without TensorRT the runner says how to install it (exit message, no traceback)
    out = subprocess.run([sys.executable, "-c", "import runpy, sys; sys.modules['tensorrt']=None; "
                          f"sys.argv=['r','x.plan']; runpy.run_path({str(DEVICE / 'run_engine.py')!r}, "
                          "run_name='__main__')"], capture_output=True, text=True)
    assert out.returncode != 0 and "python3-libnvinfer" in out.stderr


def _fake_tools(tmp_path, trt_version):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "trtexec").write_text('#!/usr/bin/env bash\nfor a in "$@"; do case "$a" in --saveEngine=*) '
                                    'echo plan > "${a#--saveEngine=}";; esac; done\necho "TRTEXEC $*" >> trtexec.log\n')
    (bindir / "python3").write_text(f'#!/usr/bin/env bash\necho "{trt_version}"\n')
    for f in bindir.iterdir():
        f.chmod(0o755)
    return bindir


@pytest.mark.parametrize("trt_version,expect,absent", [
    ("10.3.0", "--onnx=model.fp16.onnx", "--fp16"),     # 10.x: the FP16 ONNX, strongly typed
    ("11.4.1", "--onnx=model.fp16.onnx", "--stronglyTyped"),
])
def test_build_engine_sh_picks_semantics_by_tensorrt_version(build_dir, tmp_path, trt_version, expect, absent):
    info = create_bundle(build_dir, tmp_path / "b.tar.gz")
    dest = extract_bundle(info.path, tmp_path / "dev")
    bindir = _fake_tools(tmp_path, trt_version)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(["bash", str(dest / "build_engine.sh")], cwd=dest, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    log = (dest / "trtexec.log").read_text()
    assert expect in log and absent not in log and "--profile=1" in log
    assert (dest / "model.fp16.plan").is_file()
    meta = json.loads((dest / "model.fp16.plan.device.json").read_text())
    assert meta["tensorrt"] == trt_version and len(meta["engine_sha256"]) == 64


def test_build_engine_sh_refuses_tampered_bundle(build_dir, tmp_path):
    dest = extract_bundle(create_bundle(build_dir, tmp_path / "b.tar.gz").path, tmp_path / "dev")
    (dest / "model.fp16.onnx").write_bytes(b"changed")
    env = {"PATH": f"{_fake_tools(tmp_path, '10.3.0')}:/usr/bin:/bin"}
    out = subprocess.run(["bash", str(dest / "build_engine.sh")], cwd=dest, env=env, capture_output=True, text=True)
    assert out.returncode == 6 and "SHA256SUMS check failed" in out.stderr
