"""Units under the trust guarantees: the staging swap and its recovery, the status writer, atomic files."""

from __future__ import annotations

import json
import os
import time

import pytest

from resvit_export.errors import DiskFullError, InvalidArtifactError, OutputDirError
from resvit_export.io import atomic_path, copy_atomic
from resvit_export.staging import recover_interrupted, staged_output
from resvit_export.status import read_status, require_passed, write_status


def _passed(d, **files):
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    write_status(d, "build", "PASSED", started=time.monotonic())
    return d


def test_publish_swaps_and_an_interrupt_leaves_the_target_alone(tmp_path):
    target = _passed(tmp_path / "out", a="old")
    with staged_output(target, force=True) as stage:
        (stage.path / "a").write_text("new")  # left without publish(): what an interrupt does
    assert (target / "a").read_text() == "old"  # never published: the staging dir is gone, target untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]
    with staged_output(target, force=True) as stage:
        _passed(stage.path, a="new")
        stage.publish()
    assert (target / "a").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]


def test_recovery_after_a_kill_between_the_two_renames(tmp_path):
    target = tmp_path / "out"
    old = _passed(tmp_path / ".out.old-x1", a="old")  # the kill hit after target -> old, before staging -> target
    stale = _passed(tmp_path / ".out.staging-x2", a="half")
    recover_interrupted(target)
    assert (target / "a").read_text() == "old" and not old.exists() and not stale.exists()


def test_failed_run_never_replaces_an_earlier_output(tmp_path):
    target = _passed(tmp_path / "out", a="old")
    with staged_output(target, force=True) as stage:
        (stage.path / "a").write_text("broken")
        where = stage.fail("build", time.monotonic(), ValueError("boom"), {})
    assert where == tmp_path / "out.failed" / "status.json" and (target / "a").read_text() == "old"
    assert read_status(tmp_path / "out.failed").error == "ValueError: boom"


def test_require_passed_reports_each_problem(tmp_path):
    d = _passed(tmp_path / "d", a="1")
    assert require_passed(d, consumes=["a"]).passed
    (d / "b").write_text("2")
    with pytest.raises(InvalidArtifactError, match="b is not recorded in status.json"):
        require_passed(d, consumes=["b"])
    (d / "a").write_text("changed")
    with pytest.raises(InvalidArtifactError, match="a was modified after the run"):
        require_passed(d, consumes=["a"], allow_unverified=True)  # the override never covers a modified file
    (d / "status.json").write_text(json.dumps({"schema": "resvit-export/status@1", "command": "build"}))
    with pytest.raises(InvalidArtifactError, match=r"status.json: field \(top level\): 'status' is a required"):
        read_status(d)
    with pytest.raises(InvalidArtifactError, match="has no status.json"):
        require_passed(tmp_path)


def test_atomic_write_on_a_full_disk_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    final = tmp_path / "plan.json"
    final.write_text("previous")

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(DiskFullError, match=r"no space left on device while writing .*plan.json \(.* MiB free on"):
        with atomic_path(final) as tmp:
            tmp.write_text("new, complete")
    monkeypatch.undo()
    assert final.read_text() == "previous" and sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_copies_are_atomic_and_weights_get_umask_permissions(tmp_path):
    from resvit_export.models import create_model, save_weights

    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 1000)
    copy_atomic(src, tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == src.read_bytes()
    mask = os.umask(0o022)
    try:
        path = save_weights(create_model("deit_test"), tmp_path / "w.safetensors")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644  # was 0600: mkstemp's mode leaked through


def test_output_dir_refusals(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputDirError, match="not a directory"):
        with staged_output(tmp_path / "f"):
            pass
    with pytest.raises(OutputDirError, match="file-system root"):
        with staged_output("/", force=True):
            pass
