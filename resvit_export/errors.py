"""One exception hierarchy. Every message says what failed, the offending value and how to fix it.

Each class carries the process exit code the CLI uses, so scripts can tell failures apart:

    0 ok · 1 unexpected internal error · 2 usage (bad option/argument) · 3 parity gate failed
    4 export failed / range narrowed · 5 lint found errors · 6 bad input file (checkpoint, ONNX, bundle,
    a build directory that is not PASSED or was modified) · 7 missing optional dependency
    8 engine/TensorRT step failed · 9 output directory refused (not empty, not a build, locked by another run)
    10 disk full · 11 out of memory · 130 interrupted

:func:`exit_code_for` is the one mapping from any exception to that code; :func:`one_line` is how every
failure is shown (first line of the message, prefixed by the error class).
"""

from __future__ import annotations

__all__ = [
    "ResvitExportError",
    "UsageError",
    "UnknownModelError",
    "ConfigError",
    "ModelContractError",
    "InputSizeError",
    "CheckpointError",
    "ExportError",
    "RangeNarrowedError",
    "GraphRewriteError",
    "LintError",
    "ParityError",
    "InvalidArtifactError",
    "MissingDependencyError",
    "EngineBuildError",
    "OutputDirError",
    "OutputLockedError",
    "DiskFullError",
    "OutOfMemoryError",
    "exit_code_for",
    "one_line",
]


class ResvitExportError(Exception):
    """Base class for every error the user can act on."""

    exit_code = 1


class UsageError(ResvitExportError, ValueError):
    """A bad option value, profile string or argument combination."""

    exit_code = 2


class UnknownModelError(UsageError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class ConfigError(UsageError):
    """A config override that does not exist or has the wrong type."""


class ModelContractError(UsageError):
    """A model that lacks a piece of the model contract (models/contract.py), named in the message."""


class InputSizeError(UsageError):
    """An input resolution the model does not accept (below its minimum, above its maximum, wrong rank)."""


class CheckpointError(ResvitExportError):
    """A weights file that cannot be read or does not fit the model config."""

    exit_code = 6


class ExportError(ResvitExportError):
    """torch.onnx.export failed or produced an unusable graph."""

    exit_code = 4


class RangeNarrowedError(ExportError):
    """The exporter specialized or narrowed a dynamic dimension: the ONNX would be wrong elsewhere in the range."""


class GraphRewriteError(ResvitExportError):
    """A rewrite pass failed or changed outputs beyond tolerance."""

    exit_code = 4


class LintError(ResvitExportError):
    """The graph contains constructs the target TensorRT ONNX parser rejects."""

    exit_code = 5


class ParityError(ResvitExportError):
    """An artifact's outputs differ from PyTorch beyond tolerance."""

    exit_code = 3


class InvalidArtifactError(ResvitExportError):
    """A file that should be an ONNX model, manifest, plan or bundle is missing, corrupt or tampered with."""

    exit_code = 6


class MissingDependencyError(ResvitExportError, ImportError):
    """An optional dependency is needed for this step and is not installed."""

    exit_code = 7


class EngineBuildError(ResvitExportError):
    """TensorRT refused or failed to build/run an engine."""

    exit_code = 8


class OutputDirError(ResvitExportError):
    """The output directory is not writable or not empty (use --force to overwrite)."""

    exit_code = 9


class OutputLockedError(OutputDirError):
    """Another resvit-export run holds the output directory's lock."""


class DiskFullError(ResvitExportError, OSError):
    """A write failed because the file system is full (ENOSPC) or over quota (EDQUOT)."""

    exit_code = 10


class OutOfMemoryError(ResvitExportError, MemoryError):
    """The process ran out of memory (a smaller profile max or batch usually fixes it)."""

    exit_code = 11


def exit_code_for(err: BaseException) -> int:
    """The process exit code for ``err`` (the table in this module's docstring)."""
    if isinstance(err, ResvitExportError):
        return err.exit_code
    if isinstance(err, KeyboardInterrupt):
        return 130
    if isinstance(err, MemoryError):
        return OutOfMemoryError.exit_code
    if isinstance(err, OSError) and err.errno in _DISK_FULL_ERRNOS:
        return DiskFullError.exit_code
    return 1


def one_line(err: BaseException) -> str:
    """``ClassName: first line of the message`` - how a failure is shown and recorded in status.json."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _disk_full_errnos() -> frozenset[int]:
    import errno

    return frozenset(e for e in (getattr(errno, "ENOSPC", None), getattr(errno, "EDQUOT", None)) if e is not None)


_DISK_FULL_ERRNOS = _disk_full_errnos()


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in _DISK_FULL_ERRNOS
