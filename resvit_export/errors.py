"""One exception hierarchy. Every message says what failed, the offending value and how to fix it.

Each class carries the process exit code the CLI uses, so scripts can tell failures apart:

    0 ok · 1 unexpected internal error · 2 usage (bad option/argument) · 3 parity gate failed
    4 export failed / range narrowed · 5 lint found errors · 6 bad input file (checkpoint, ONNX, bundle)
    7 missing optional dependency · 8 engine/TensorRT step failed · 9 output directory refused
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
