"""The ``resvit-export`` command. Subcommands load lazily so ``--help`` works without onnxruntime or tensorrt."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from resvit_export import __version__

# name -> (module, attribute). Each module holds one thin click command over the library API.
COMMANDS = {
    "models": ("resvit_export.cli.cmd_models", "models"),
    "export": ("resvit_export.cli.cmd_export", "export"),
    "validate": ("resvit_export.cli.cmd_validate", "validate"),
    "build": ("resvit_export.cli.cmd_build", "build"),
    "lint": ("resvit_export.cli.cmd_lint", "lint"),
    "plan": ("resvit_export.cli.cmd_plan", "plan"),
    "calibrate": ("resvit_export.cli.cmd_calibrate", "calibrate"),
    "inspect": ("resvit_export.cli.cmd_inspect", "inspect"),
    "bundle": ("resvit_export.cli.cmd_bundle", "bundle"),
    "convert": ("resvit_export.cli.cmd_convert", "convert"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        # Only commands whose module is present; tests/cli assert that this is every entry of COMMANDS.
        return sorted(n for n, (mod, _) in COMMANDS.items() if importlib.util.find_spec(mod) is not None)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """click's main, except that a usage error is one line (``Error: UsageError: ...``, exit 2) like
        every other failure, instead of the usage text plus a hint plus the error."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as err:
            where = f" (see `{err.ctx.command_path} --help`)" if err.ctx is not None else ""
            message = " ".join(err.format_message().split())
            click.echo(f"Error: UsageError: {message}{where}", err=True)
            sys.exit(err.exit_code)
        except click.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="resvit-export")
def cli():
    """Resolution-flexible ViTs from PyTorch to ONNX and TensorRT, proven against PyTorch over the range.

    \b
    Typical run (CPU + ONNX Runtime; the engine step runs where TensorRT is installed):
      resvit-export build --profile 224-1792
    """
