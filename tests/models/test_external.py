"""A model defined outside the package (examples/my_vit.py) goes through `build` via module:factory and the
Python API; one that lacks a contract piece is refused with one line before any file exists."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from resvit_export.cli.main import cli
from resvit_export.errors import InputSizeError, ModelContractError, UsageError

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # `examples.my_vit` imports from the working directory, as with `python -m`


def test_module_factory_builds_and_passes(in_repo, tmp_path):
    out = tmp_path / "my_vit"
    run = CliRunner().invoke(cli, ["build", "--model", "examples.my_vit:my_vit_tiny", "--set", "depth=1",
                                   "--profile", "32-96", "--engine", "skip", "-o", str(out)])
    assert run.exit_code == 0, run.output
    assert run.output.strip().splitlines()[-1].startswith("PASSED")
    status = json.loads((out / "status.json").read_text())
    assert status["details"]["model"] == "examples.my_vit:my_vit_tiny"
    assert [s["status"] for s in status["details"]["steps"] if s["name"] in ("rewrite", "lint", "validate")] \
        == ["PASSED"] * 3
    record = json.loads((out / "export.json").read_text())
    assert record["family"] == "my_vit" and record["overrides"] == {"depth": "1"}
    parity = json.loads((out / "parity.json").read_text())
    assert parity["passed"] and len(parity["cases"]) > 1


@pytest.mark.parametrize("args,needle", [
    (["--model", "examples.my_vit:missing_deploy_spec"], "has no `deploy_spec`"),
    (["--model", "examples.my_vit:no_such_factory"], "has no attribute 'no_such_factory'"),
    (["--model", "examples.not_a_module:f"], "cannot import module 'examples.not_a_module'"),
    (["examples/my_vit.py:my_vit_tiny", "--set", "width=3"], "calling the factory with --set width raised"),
    (["--model", "examples/my_vit.py"], "give its factory: examples/my_vit.py:FACTORY"),
])
def test_refused_with_one_line_before_any_work(in_repo, tmp_path, args, needle):
    out = tmp_path / "never"
    run = CliRunner().invoke(cli, ["build", *args, "--profile", "32-96", "-o", str(out)])
    assert run.exit_code == ModelContractError.exit_code == UsageError.exit_code == 2, run.output
    lines = run.output.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], run.output
    assert not out.exists()


def test_python_api_takes_a_module_object(in_repo, tmp_path):
    import resvit_export
    from examples.my_vit import MyViT

    with pytest.raises(InputSizeError):  # the size rule is checked before any work
        resvit_export.build(MyViT(max_side=64), "32-96", tmp_path / "a", engine="skip")
    with pytest.raises(UsageError, match="only apply to a registry name"):
        resvit_export.build(MyViT(), "32-96", tmp_path / "b", overrides={"depth": "1"})
    with pytest.raises(ModelContractError, match="has no `size_rule`"):
        resvit_export.build(type("Bare", (__import__("torch").nn.Module,), {})(), "32-96", tmp_path / "c")
    assert not any(tmp_path.iterdir())


def test_export_takes_a_module_factory_too(in_repo, tmp_path):
    out = tmp_path / "exp"
    run = CliRunner().invoke(cli, ["export", "examples.my_vit:my_vit_tiny", "--set", "depth=1", "--profile", "32-64",
                                   "-o", str(out)])
    assert run.exit_code == 0, run.output
    assert json.loads((out / "export.json").read_text())["family"] == "my_vit"
    packed = CliRunner().invoke(cli, ["export", "examples.my_vit:my_vit_tiny", "--packed", "--profile", "32-64",
                                      "-o", str(tmp_path / "p")])
    assert packed.exit_code == 2 and not (tmp_path / "p").exists()
