"""`resvit-export plan` through click's CliRunner."""

import json

from click.testing import CliRunner

from resvit_export.cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_plan_prints_bands_memory_warnings_and_both_syntaxes(tmp_path):
    r = run("plan", "deit_s", "--profile", "224-1792", "--batch", "1-8@1", "--device", "orin-nano",
            "--precision", "fp16", "-o", str(tmp_path))
    assert r.exit_code == 0, r.output
    out = r.output
    assert "profile 0: min 224x224 opt 336x336 max 512x512" in out
    assert "profile 2: min 224x224 opt 1360x1360 max 1792x1792" in out and "DOES NOT FIT" in out
    assert "WARNING: profile 2" in out and "reduce --batch max" in out
    assert "trtexec (TensorRT 10):" in out and "trtexec (TensorRT 11):" in out
    assert "--onnx=model.fp16.onnx" in out and "--stronglyTyped" in out
    assert out.strip().splitlines()[-1].startswith("PASSED | ") and "1 warning(s)" in out
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert len(plan["profiles"]) == 3 and plan["device"]["name"] == "orin-nano"
    assert (tmp_path / "trtexec.sh").is_file()
    r = run("plan", "deit_s", "-o", str(tmp_path))
    assert r.exit_code == 9 and "--force" in r.output


def test_plan_json_and_fp32_trt11_line(tmp_path):
    r = run("plan", "deit_test", "--profile", "224-448", "--json", "--workspace", "1024")  # fp32: build's default
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["precision"] == "fp32" and len(d["profiles"]) == 1
    assert d["trtexec"]["11"][0].startswith("trtexec --onnx=model.rewritten.onnx")
    assert "--memPoolSize=workspace:1024M" in d["trtexec"]["10"][0]


def test_plan_fp16_from_fp32_onnx_is_explained_for_trt11():
    r = run("plan", "deit_test", "--profile", "224-448", "--precision", "fp16", "--onnx", "model.onnx")
    assert r.exit_code == 0
    assert "# not possible on TensorRT 11" in r.output and "model.fp16.onnx" in r.output


def test_plan_usage_errors():
    r = run("plan", "deit_test", "--profile", "1792-224")
    assert r.exit_code == 2 and "inverted" in r.output
    r = run("plan", "deit_test", "--memory-budget", "lots")
    assert r.exit_code == 2 and "bad memory size" in r.output
    r = run("plan", "deit_tset")
    assert r.exit_code == 2 and "deit_test" in r.output
    r = run("plan", "deit_test", "--profile", "224-8192")
    assert r.exit_code == 2 and "maximum side of 4096" in r.output
    r = run("plan", "deit_test", "--set", "max_side=1024", "--profile", "224-2048")
    assert r.exit_code == 2 and "maximum side of 1024" in r.output
    r = run("plan", "deit_test", "--precision", "fp8")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1
