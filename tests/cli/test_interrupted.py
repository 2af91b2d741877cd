"""An interrupted or failing run never leaves a PASSED status.json over files of another run (issue #7)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from resvit_export.cli.main import cli
from resvit_export.status import read_status, require_passed

from .conftest import TINY_BUILD, files_of, one_line


def _artifacts(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_sigkill_late_in_a_force_rebuild_leaves_the_old_build_intact(build_copy, tmp_path):
    """Kill a real ``build --force`` (SIGKILL, no cleanup possible) once it has validated and is writing its
    plan, i.e. late in the run; the directory must still be the earlier PASSED build, byte for byte."""
    before = _artifacts(build_copy)
    proc = subprocess.Popen([sys.executable, "-m", "resvit_export.cli", "build", *TINY_BUILD, "--seed", "1",
                             "-o", str(build_copy), "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        staged = None
        while time.monotonic() < deadline and proc.poll() is None:
            found = list(tmp_path.glob(".build.staging-*/parity.json"))
            if found:  # parity done: plan, manifest and status are next
                staged = found[0].parent
                break
            time.sleep(0.05)
        assert staged is not None, f"the rebuild ended (rc {proc.poll()}) before it could be killed late"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _artifacts(build_copy) == before  # the old build, untouched
    assert require_passed(build_copy, consumes=list(before.keys() - {"status.json"})).status == "PASSED"
    assert staged.is_dir()  # the killed run's staging directory is left behind, hidden ...
    # ... and the next run that takes the directory's lock removes it (a refused run takes none)
    res = CliRunner().invoke(cli, ["build", *TINY_BUILD, "-o", str(build_copy)])
    assert res.exit_code == 9 and "--force" in one_line(res.output) and staged.exists()
    res = CliRunner().invoke(cli, ["validate", str(build_copy), "--inputs", "synthetic"])
    assert res.exit_code == 0, res.output
    assert not staged.exists() and read_status(build_copy).previous.status == "PASSED"


def test_a_failed_force_rebuild_keeps_the_old_build_and_its_own_artifacts(build_copy, tmp_path):
    before = _artifacts(build_copy)
    # a profile whose lint fails (DeiT below 224 px keeps an antialiased Resize): the build runs, then FAILS
    res = CliRunner().invoke(cli, ["build", "deit_test", "--profile", "64-256", "-o", str(build_copy), "--force"])
    assert res.exit_code == 5, res.output
    failed = tmp_path / "build.failed"
    assert f"see {failed / 'status.json'}" in res.output
    assert _artifacts(build_copy) == before
    status = read_status(failed)
    assert status.status == "FAILED" and status.exit_code == 5 and (failed / "lint.json").is_file()


def test_disk_full_is_one_line_exit_10_naming_the_file(monkeypatch, tmp_path):
    """ENOSPC injected where the build writes plan.json: exit 10, one line naming plan.json and the free space,
    a FAILED status.json, and no truncated or temp file left under the output directory."""
    import resvit_export.io as rio

    real = rio.atomic_path

    class _Full:
        def __init__(self, path):
            self.path, self.cm = Path(path), real(path)

        def __enter__(self):
            tmp = self.cm.__enter__()
            if self.path.name == "plan.json":
                with open(tmp, "w") as fh:
                    fh.write('{"partial": ')  # what a full disk leaves: a truncated temp file
                err = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                try:
                    raise err
                except OSError as e:
                    self.cm.__exit__(type(e), e, e.__traceback__)
                    raise
            return tmp

        def __exit__(self, *exc):
            return self.cm.__exit__(*exc)

    monkeypatch.setattr(rio, "atomic_path", _Full)
    out = tmp_path / "b"
    res = CliRunner().invoke(cli, ["build", *TINY_BUILD, "-o", str(out)])
    assert res.exit_code == 10, res.output
    error = res.output.strip().splitlines()[-1]
    assert error.startswith("Error: DiskFullError: no space left on device while writing ")
    assert "plan.json" in error and "MiB free on" in error
    status = read_status(out)
    assert status.status == "FAILED" and status.exit_code == 10 and status.error.startswith("DiskFullError")
    assert not (out / "plan.json").exists()
    assert [n for n in files_of(tmp_path) if "partial" in n or "staging" in n] == []


def test_memory_error_is_one_line_exit_11(monkeypatch, tmp_path):
    import resvit_export.validate.workflow as workflow

    def exhausted(*a, **k):
        raise MemoryError()

    monkeypatch.setattr(workflow, "require_modules", exhausted)  # the first call after the argument checks
    res = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert res.exit_code == 11 and one_line(res.output).startswith("Error: OutOfMemoryError: out of memory")


@pytest.mark.parametrize("command,blocked", [
    (["build", *TINY_BUILD], "onnxruntime"),
    (["export", "rivit_test", "--profile", "64-128"], "onnxscript"),
    (["validate", "{build}"], "onnxruntime"),
    (["calibrate", "{build}", "--calib-synthetic", "2"], "onnxruntime"),
    (["lint", "{build}/model.onnx"], "onnx"),
])
def test_missing_dependency_is_exit_7_in_every_command(monkeypatch, passed_build, tmp_path, command, blocked):
    monkeypatch.setitem(sys.modules, blocked, None)  # `import blocked` now fails, as if it were not installed
    before = files_of(passed_build)
    args = [a.replace("{build}", str(passed_build)) for a in command]
    out = ["-o", str(tmp_path / "o")] if command[0] in ("build", "export", "calibrate") else []
    res = CliRunner().invoke(cli, [*args, *out])
    assert res.exit_code == 7, res.output
    line = one_line(res.output)
    assert line.startswith("Error: MissingDependencyError:") and "pip install" in line
    assert files_of(tmp_path) == [] and files_of(passed_build) == before


def test_force_rebuild_replaces_only_a_resvit_output(passed_build, tmp_path):
    """prepare_output_dir(force=True), the in-place helper kept for library callers, has the same rule."""
    from resvit_export.errors import OutputDirError
    from resvit_export.io import prepare_output_dir

    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputDirError, match="holds no resvit-export status.json"):
        prepare_output_dir(home, force=True)
    assert (home / "thesis.tex").read_text() == "years of work"
    old = tmp_path / "old"
    shutil.copytree(passed_build, old)
    assert prepare_output_dir(old, force=True) == old and list(old.iterdir()) == []
