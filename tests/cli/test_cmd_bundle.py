"""`resvit-export bundle`: pack, verify, extract, and refuse a tampered archive with exit 6."""

import io
import json
import tarfile
import time

import pytest
from click.testing import CliRunner

from resvit_export.cli.main import cli
from resvit_export.profiles import parse_profile
from resvit_export.status import write_status
from resvit_export.trt.memory import ModelSpec
from resvit_export.trt.planner import plan_engine


def run(*args):
    return CliRunner().invoke(cli, ["bundle", *map(str, args)], catch_exceptions=False)


def make_dir(tmp_path):
    d = tmp_path / "build"
    d.mkdir()
    (d / "model.rewritten.onnx").write_bytes(b"onnx")
    plan = plan_engine([parse_profile("224-512")], ModelSpec("deit", 32, 2, 2), precision="fp32")
    (d / "plan.json").write_text(json.dumps(plan.to_dict()))
    write_status(d, "build", "PASSED", started=time.monotonic())
    return d


def test_bundle_pack_verify_extract(tmp_path):
    d = make_dir(tmp_path)
    out = tmp_path / "b.tar.gz"
    r = run(d, "-o", out)
    assert r.exit_code == 0, r.output
    assert "build_engine.sh" in r.output and r.output.strip().splitlines()[-1].startswith("PASSED")
    r = run(out)
    assert r.exit_code == 0 and "every sha256 matches" in r.output
    r = run(out, "--extract-to", tmp_path / "x")
    assert r.exit_code == 0 and (tmp_path / "x" / "run_engine.py").is_file()
    r = run(d, "-o", out)
    assert r.exit_code == 9
    r = run(out, "-o", tmp_path / "y.tar.gz")
    assert r.exit_code == 2


def test_bundle_tampered_exit_6(tmp_path):
    d = make_dir(tmp_path)
    good = tmp_path / "b.tar.gz"
    assert run(d, "-o", good).exit_code == 0
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(good) as tin, tarfile.open(bad, "w:gz") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()
            if m.name == "plan.json":
                data = data.replace(b"224", b"225")
            tout.addfile(m, io.BytesIO(data))
    r = run(bad, "--extract-to", tmp_path / "x")
    assert r.exit_code == 6 and "plan.json was modified" in r.output
    assert not (tmp_path / "x").exists()


def test_bundle_needs_onnx_and_plan(tmp_path):
    (tmp_path / "e").mkdir()
    r = run(tmp_path / "e", "-o", tmp_path / "b.tar.gz")
    assert r.exit_code == 2 and "no .onnx" in r.output


# --- refusals on a real build (issue #7): the directory must be exactly the PASSED build it says it is ---------

def _refused(src, out, needle, code=6):
    r = CliRunner().invoke(cli, ["bundle", str(src), "-o", str(out)])
    assert r.exit_code == code, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], r.output
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))  # no archive, no temp file


def _edit_status(d, **changes):
    status = json.loads((d / "status.json").read_text())
    status.update(changes)
    (d / "status.json").write_text(json.dumps(status))


def test_bundle_refuses_a_failed_build(build_copy, tmp_path):
    _edit_status(build_copy, status="FAILED", exit_code=3, error="ParityError: breach")
    _refused(build_copy, tmp_path / "b.tar.gz", "status.json says build FAILED - ParityError: breach")


def test_bundle_refuses_a_status_that_is_not_json(build_copy, tmp_path):
    (build_copy / "status.json").write_text('{"status": "PASSED"')
    _refused(build_copy, tmp_path / "b.tar.gz", "status.json is not valid JSON")


def test_bundle_refuses_a_file_swapped_after_the_build(build_copy, tmp_path):
    import shutil

    shutil.copyfile(build_copy / "model.onnx", build_copy / "model.rewritten.onnx")  # a valid ONNX, the wrong one
    _refused(build_copy, tmp_path / "b.tar.gz", "model.rewritten.onnx was modified after the run")


def test_bundle_refuses_a_file_added_after_the_build(build_copy, tmp_path):
    (build_copy / "model.int8.onnx").write_bytes(b"not from this build")
    _refused(build_copy, tmp_path / "b.tar.gz", "model.int8.onnx is not recorded in status.json")


@pytest.mark.parametrize("file,edit,field", [
    ("status.json", lambda d: d.update(exit_code="zero"), "exit_code"),
    ("status.json", lambda d: d.update(files=["model.onnx"]), "files"),
    ("plan.json", lambda d: d.update(profiles=[224]), "profiles[0]"),
    ("plan.json", lambda d: d["profiles"][0].update(min="224"), "profiles[0].min"),
])
def test_bundle_schema_errors_name_file_and_field(build_copy, tmp_path, file, edit, field):
    data = json.loads((build_copy / file).read_text())
    edit(data)
    (build_copy / file).write_text(json.dumps(data))
    if file != "status.json":  # keep the directory consistent: only the schema is wrong
        write_status(build_copy, "build", "PASSED", started=time.monotonic())
    _refused(build_copy, tmp_path / "b.tar.gz", f"{file}: field {field}")


def test_allow_unverified_is_recorded_in_the_bundle(build_copy, tmp_path):
    _edit_status(build_copy, status="FAILED", exit_code=5)
    out = tmp_path / "b.tar.gz"
    r = CliRunner().invoke(cli, ["bundle", str(build_copy), "-o", str(out), "--allow-unverified"])
    assert r.exit_code == 0, r.output
    assert "UNVERIFIED" in r.output
    with tarfile.open(out) as tar:
        origin = json.loads(tar.extractfile("bundle.json").read())
        assert "status.json" in tar.getnames()
    assert origin["allow_unverified"] is True and origin["verified"] is False
    assert origin["source_status"].startswith("build FAILED")


def test_bundle_of_a_passed_build_records_it_verified(passed_build, tmp_path):
    out = tmp_path / "b.tar.gz"
    r = CliRunner().invoke(cli, ["bundle", str(passed_build), "-o", str(out)])
    assert r.exit_code == 0, r.output
    with tarfile.open(out) as tar:
        origin = json.loads(tar.extractfile("bundle.json").read())
    assert origin == {"source": str(passed_build), "source_status": "build PASSED", "verified": True,
                      "allow_unverified": False}


def test_decompression_bomb_is_refused_from_its_header(tmp_path):
    """A small archive whose header announces a 6 GiB member is refused before any of its data is read or
    written (the archive here is even truncated after the header: reading on would fail differently)."""
    import gzip

    info = tarfile.TarInfo("model.onnx")
    info.size = 6 << 30
    bomb = tmp_path / "bomb.tar.gz"
    with gzip.open(bomb, "wb") as gz:
        gz.write(info.tobuf(format=tarfile.GNU_FORMAT))
        gz.write(bytes(6 << 20))  # 6 MiB of the announced 6 GiB
    for args in ([str(bomb)], [str(bomb), "--extract-to", str(tmp_path / "x")]):
        r = CliRunner().invoke(cli, ["bundle", *args])
        assert r.exit_code == 6, r.output
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and "would expand to 6.0 GiB" in lines[0] and "decompression bomb" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.tar.gz"]
