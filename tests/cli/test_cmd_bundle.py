"""`resvit-export bundle`: pack, verify, extract, and refuse a tampered archive with exit 6."""

import io
import json
import tarfile

from click.testing import CliRunner

from resvit_export.cli.main import cli
from resvit_export.profiles import parse_profile
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
