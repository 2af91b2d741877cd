"""The ``resvit-export`` command. Subcommands load lazily so ``--help`` works without onnxruntime or tensorrt."""

from __future__ import annotations

import importlib
import importlib.util

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


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="resvit-export")
def cli():
    """Resolution-flexible ViTs from PyTorch to ONNX and TensorRT, proven against PyTorch over the range.

    \b
    Typical run (CPU + ONNX Runtime; the engine step runs where TensorRT is installed):
      resvit-export build --profile 224-1792
    """
