"""Helpers every command shares: error mapping, the final PASSED/FAILED line, shared options."""

from __future__ import annotations

import functools
import sys
import time

import click

from resvit_export.errors import ResvitExportError

__all__ = ["handle_errors", "final_line", "ResvitClickException"]


class ResvitClickException(click.ClickException):
    """A library error shown as one line, with the error class's exit code."""

    def __init__(self, err: ResvitExportError):
        super().__init__(str(err))
        self.exit_code = err.exit_code
        self.kind = type(err).__name__

    def format_message(self) -> str:
        return f"{self.kind}: {self.message}"


def handle_errors(fn):
    """Turn ResvitExportError into a one-line message and its exit code (no traceback unless RESVIT_DEBUG=1)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import os

        try:
            return fn(*args, **kwargs)
        except ResvitExportError as err:
            if os.environ.get("RESVIT_DEBUG"):
                raise
            raise ResvitClickException(err) from err
        except KeyboardInterrupt:
            click.echo("FAILED | interrupted; no partial artifact was kept", err=True)
            sys.exit(130)

    return wrapper


def final_line(passed: bool, command: str, started: float, detail: str = "") -> None:
    """Print the one closing line every command ends with (Polygraphy/trtexec style)."""
    status = "PASSED" if passed else "FAILED"
    extra = f" | {detail}" if detail else ""
    click.echo(f"{status} | {time.monotonic() - started:.1f}s | resvit-export {command}{extra}")
