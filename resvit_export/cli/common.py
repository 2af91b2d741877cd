"""What every command shares: the one place failures become one line and an exit code, and the final line.

Shared options live in :mod:`.options`.
"""

from __future__ import annotations

import functools
import os
import sys
import time

import click

from resvit_export.errors import (DiskFullError, MissingDependencyError, OutOfMemoryError, ResvitExportError,
                                  is_disk_full)

__all__ = ["handle_errors", "final_line", "ResvitClickException", "as_library_error"]


class ResvitClickException(click.ClickException):
    """A library error shown as one line, with the error class's exit code."""

    def __init__(self, err: ResvitExportError):
        lines = str(err).strip().splitlines()
        super().__init__(" ".join(line.strip() for line in lines))  # one line, whatever the message held
        self.exit_code = err.exit_code
        self.kind = type(err).__name__

    def format_message(self) -> str:
        return f"{self.kind}: {self.message}"


def as_library_error(err: BaseException) -> ResvitExportError | None:
    """The ResvitExportError an exception stands for: missing optional modules (exit 7), a full disk (10)
    and memory exhaustion (11) are not bugs; anything else unexpected returns None (a real internal error)."""
    if isinstance(err, ResvitExportError):
        return err
    if isinstance(err, ModuleNotFoundError) and err.name and not err.name.startswith("resvit_export"):
        from resvit_export._optional import _HINTS

        pip_name, why = _HINTS.get(err.name.split(".")[0], (err.name.split(".")[0], "this command needs it"))
        return MissingDependencyError(f"{why}, but `import {err.name}` failed; install it with "
                                      f"`pip install {pip_name}`")
    if isinstance(err, MemoryError):
        return OutOfMemoryError("out of memory; lower the profile max, --batch or the calibration size, or close "
                                "other programs")
    if is_disk_full(err):
        from resvit_export.io import disk_full_error

        return disk_full_error(err.filename or os.getcwd(), err) if err.filename else \
            DiskFullError(f"no space left on device ({err.strerror}); free some space or choose another -o")
    return None


def handle_errors(fn):
    """Turn every expected failure into a one-line message and its exit code (no traceback unless
    RESVIT_DEBUG=1); an unexpected exception stays a traceback (exit 1): that is a bug to report."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("FAILED | interrupted; no partial artifact was kept", err=True)
            sys.exit(130)
        except Exception as err:
            known = as_library_error(err)
            if known is None or os.environ.get("RESVIT_DEBUG"):
                raise
            raise ResvitClickException(known) from err

    return wrapper


def final_line(passed: bool, command: str, started: float, detail: str = "") -> None:
    """Print the one closing line every command ends with (Polygraphy/trtexec style)."""
    status = "PASSED" if passed else "FAILED"
    extra = f" | {detail}" if detail else ""
    click.echo(f"{status} | {time.monotonic() - started:.1f}s | resvit-export {command}{extra}")
