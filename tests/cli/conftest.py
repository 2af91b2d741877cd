"""Artifacts shared by the CLI tests: one real tiny build, made once per session (copy it before changing it)."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from resvit_export.cli.main import cli

TINY_BUILD = ["rivit_test", "--profile", "64-128"]  # ~10 s on 2 cores; engine DEFERRED


@pytest.fixture(scope="session")
def passed_build(tmp_path_factory):
    """A PASSED ``build rivit_test --profile 64-128`` directory. Read-only: use ``build_copy`` to modify."""
    out = tmp_path_factory.mktemp("shared") / "rivit"
    result = CliRunner().invoke(cli, ["build", *TINY_BUILD, "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def build_copy(passed_build, tmp_path):
    dst = tmp_path / "build"
    shutil.copytree(passed_build, dst)
    return dst


def files_of(path):
    """Every entry under ``path`` (hidden ones included), to show that a refused command created nothing."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else None


def one_line(output: str) -> str:
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, output
    return lines[0]
