"""Every command's --help works without the heavy optional dependencies (they are imported lazily)."""

import subprocess
import sys
import textwrap

import pytest

from resvit_export.cli.main import COMMANDS, cli

BLOCKED = ("onnxruntime", "tensorrt", "onnx_graphsurgeon", "polygraphy", "matplotlib")


def test_every_registered_command_exists():
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.output, f"command {name} missing from --help (module not found?)"


@pytest.mark.parametrize("command", [None, *sorted(COMMANDS)])
def test_help_without_optional_dependencies(command):
    # A fresh interpreter with the heavy modules made unimportable (None in sys.modules -> ImportError).
    args = ["--help"] if command is None else [command, "--help"]
    code = textwrap.dedent(f"""
        import sys
        for name in {BLOCKED!r}:
            sys.modules[name] = None
        from click.testing import CliRunner
        from resvit_export.cli.main import cli
        import resvit_export, resvit_export.pipeline, resvit_export.profiles
        r = CliRunner().invoke(cli, {args!r})
        print(r.output)
        if r.exception and not isinstance(r.exception, SystemExit):
            raise r.exception
        sys.exit(r.exit_code)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Usage:" in proc.stdout
