"""Bad input is refused before any work: one line, its own exit code, and nothing created (issue #7).

Each case runs the real command; the output directory's parent is listed before and after, so a refusal
that left a lock, a staging directory or a half-written output would fail here.
"""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from resvit_export.cli.main import cli

from .conftest import files_of, one_line

# (arguments after MODEL, exit code, text the one line must contain)
BUILD_REFUSALS = [
    (["--int8"], 2, "INT8 needs calibration data"),
    (["--fp16", "--int8"], 2, "conflict"),
    (["--calib-synthetic", "4"], 2, "only apply to --precision int8"),
    (["--device", "orin-nanoo"], 2, "'orin-nanoo' is not one of"),
    (["--memory-budget", "lots"], 2, "bad memory size 'lots'"),
    (["--only", "no_such_pass"], 2, "'no_such_pass' is not one of"),
    (["--cos-min", "2"], 2, "--cos-min"),
    (["--atol", "-1"], 2, "--atol"),
    (["--profile", "224-448", "--resolutions", "2000x32"], 2, "outside the profile"),
    (["--profile", "224-448", "--resolutions", "224x20"], 2, "minimum side"),
    (["--profile", "1792-224"], 2, "inverted"),
    (["--profile", "abc"], 2, "accepted --profile forms"),
    (["--profile", "16-224"], 2, "minimum"),
    (["--profile", "224-9000"], 2, "maximum side of 4096"),
    (["--seed", "99999999999999999999"], 2, "--seed"),
    (["--seed", "-1"], 2, "--seed"),
    (["--batch", "1-100000"], 2, "batch max 100000 is above 256"),
    (["--set", "detph=1"], 2, "no config field"),
    (["--set", "num_heads=5"], 2, "divisible by num_heads 5"),  # the config's own invariants (dim 32) ...
    (["--set", "depth=-3"], 2, "depth must be a positive integer, got -3"),  # ... which exported before #7
    (["--set", "num_heads=0"], 2, "num_heads must be a positive integer"),
    (["--set", "dim=0"], 2, "dim must be a positive integer"),
    (["--set", "patch_size=0"], 2, "patch_size must be a positive integer"),
    (["--set", "mlp_ratio=-1"], 2, "mlp_ratio must be > 0"),
    (["--set", "nonsense"], 2, "key=value"),
    (["--target", "jetpack4"], 2, "'jetpack4' is not one of"),
    (["--weights", "missing.safetensors"], 6, "does not exist"),
    (["--no-such-flag"], 2, "No such option"),
]


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("args,code,needle", BUILD_REFUSALS, ids=[" ".join(a[0]) for a in BUILD_REFUSALS])
def test_build_refuses_before_any_work(tmp_path, args, code, needle):
    out = tmp_path / "parent" / "b"
    started = time.monotonic()
    res = _invoke("build", "deit_test", *args, "-o", out)
    seconds = time.monotonic() - started
    assert res.exit_code == code, res.output
    line = one_line(res.output)
    assert line.startswith("Error: ") and needle in line
    assert files_of(tmp_path) == []  # nothing created, not even -o's parent
    assert seconds < 5, f"refused only after {seconds:.1f}s"  # issue #7: `--int8` without data took 111 s


def test_unknown_model_lists_names(tmp_path):
    res = _invoke("build", "vitarr_s", "-o", tmp_path / "b")
    assert res.exit_code == 2 and "vitar_s" in one_line(res.output)
    assert files_of(tmp_path) == []


def test_output_path_that_is_a_file_exits_9(tmp_path):
    target = tmp_path / "taken"
    target.write_text("mine")
    for command in (["build", "deit_test"], ["export", "deit_test"]):
        res = _invoke(*command, "-o", target, "--force")
        assert res.exit_code == 9 and "is not a directory" in one_line(res.output), res.output
    assert target.read_text() == "mine" and files_of(tmp_path) == ["taken"]


def test_force_refuses_a_directory_resvit_export_did_not_write(tmp_path):
    home = tmp_path / "home"
    (home / "docs").mkdir(parents=True)
    (home / "notes.txt").write_text("precious")
    before = files_of(tmp_path)
    res = _invoke("build", "deit_test", "-o", home, "--force")
    assert res.exit_code == 9 and "holds no resvit-export status.json" in one_line(res.output), res.output
    assert files_of(tmp_path) == before


def test_second_run_into_a_locked_directory_is_refused(tmp_path):
    from resvit_export.staging import output_lock

    out = tmp_path / "b"
    with output_lock(out):  # what a running build holds
        res = _invoke("build", "rivit_test", "--profile", "64-128", "-o", out)
    assert res.exit_code == 9 and "another resvit-export run is writing" in one_line(res.output), res.output
    assert not out.exists()


@pytest.mark.parametrize("args,needle", [
    (["--profile", "224-abc"], "accepted --profile forms"),
    (["--profile", "16-128"], "minimum side of 32"),
    (["--set", "nope=1"], "no config field"),
    (["--set", "num_heads=5"], "divisible by num_heads 5"),
    (["--packed"], "only for NaViT"),
])
def test_export_refuses_before_any_work(tmp_path, args, needle):
    res = _invoke("export", "deit_test", *args, "-o", tmp_path / "o")
    assert res.exit_code == 2 and needle in one_line(res.output), res.output
    assert files_of(tmp_path) == []


def test_lint_refuses_an_empty_onnx(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    res = _invoke("lint", empty)
    assert res.exit_code == 6 and "holds no graph" in one_line(res.output), res.output
    assert "PASSED" not in res.output


def test_plan_output_that_is_a_file_exits_9(tmp_path):
    (tmp_path / "f").write_text("x")
    res = _invoke("plan", "deit_test", "-o", tmp_path / "f")
    assert res.exit_code == 9 and "not a directory" in one_line(res.output)
