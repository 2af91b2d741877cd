"""training/train_reference.py: refuses bad input before any work, and writes weights + records that load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "training" / "train_reference.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_unknown_model_is_refused_with_one_line_and_nothing_written(tmp_path):
    out = tmp_path / "w"
    proc = run("train", "deit_tset", "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "deit_tset" in proc.stderr and "deit_test" in proc.stderr
    assert not out.exists()


def test_evaluate_without_a_record_is_a_bad_input_file(tmp_path):
    proc = run("evaluate", "deit_test", "--dir", str(tmp_path))
    assert proc.returncode == 6
    assert proc.stderr.strip().count("\n") == 0 and "train_reference.py train deit_test" in proc.stderr


def test_train_evaluate_table_round_trip(tmp_path):
    assert run("train", "deit_test", "--steps", "2", "--out", str(tmp_path)).returncode == 0
    record = json.loads((tmp_path / "deit_test.json").read_text())
    assert record["steps"] == 2 and record["heldout"] is None and record["threads"] == 1
    proc = run("evaluate", "deit_test", "--dir", str(tmp_path), "--n", "3")
    assert proc.returncode == 0, proc.stderr
    held = json.loads((tmp_path / "deit_test.json").read_text())["heldout"]
    assert held["n_per_size"] == 3 and set(held) >= {"train_range", "unseen_larger", "unseen_smaller", "test_slice"}
    table = run("table", "deit_test", "--dir", str(tmp_path))
    assert table.returncode == 0 and table.stdout.count("\n| deit_test |") == 2  # summary and per-size rows


def test_evaluate_refuses_weights_that_do_not_match_their_record(tmp_path):
    assert run("train", "deit_test", "--steps", "1", "--out", str(tmp_path)).returncode == 0
    weights = tmp_path / "deit_test.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    proc = run("evaluate", "deit_test", "--dir", str(tmp_path), "--n", "3")
    assert proc.returncode == 6 and "sha256" in proc.stderr
    assert json.loads((tmp_path / "deit_test.json").read_text())["heldout"] is None


@pytest.mark.parametrize("args", [("train",), ("train", "--steps", "0", "deit_test")])
def test_bad_arguments_exit_2(args, tmp_path):
    assert run(*args, "--out", str(tmp_path / "x")).returncode == 2


def test_table_before_evaluate_says_what_to_run(tmp_path):
    assert run("train", "deit_test", "--steps", "1", "--out", str(tmp_path)).returncode == 0
    proc = run("table", "deit_test", "--dir", str(tmp_path))
    assert proc.returncode == 6 and proc.stderr.strip().count("\n") == 0
    assert "train_reference.py evaluate deit_test" in proc.stderr
