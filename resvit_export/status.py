"""status.json: the one verdict of an output directory, written by one function with one schema.

``build``, ``export``, ``validate`` and ``calibrate`` write it through :func:`write_status`, last (after every
artifact). It records the command, RUNNING / PASSED / FAILED, the exit code, a one-line error, and the sha256 of
every file the directory held at that moment, so a consumer can tell that the files are still exactly the
ones the verdict is about. ``validate`` keeps the status it replaced (the build or export that produced the
graph) as ``previous``.

Consumers (``bundle``, ``validate``, ``inspect``, ``calibrate``) call :func:`require_passed` before using a
directory: a missing, malformed, RUNNING or FAILED status - or a file whose sha256 no longer matches - is
refused with exit 6. ``--allow-unverified`` lets a status that is not PASSED through, and is recorded in what
the consumer writes; a modified file is never let through.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from . import __version__
from .errors import InvalidArtifactError, exit_code_for, one_line
from .io import TEMP_SUFFIX, sha256_file, write_json_atomic
from .layout import BuildLayout
from .schemas import STATUS, check_document, read_json_document

__all__ = ["STATUS_SCHEMA", "RunStatus", "write_status", "read_status", "require_passed", "snapshot_files",
           "ALLOW_UNVERIFIED_HINT"]

STATUS_SCHEMA = "resvit-export/status@1"
PRODUCERS = ("build", "export")  # commands whose status vouches for the graph itself
ALLOW_UNVERIFIED_HINT = "pass --allow-unverified to use it anyway (recorded)"


@dataclass(frozen=True)
class RunStatus:
    """A parsed status.json."""

    command: str
    status: str  # RUNNING | PASSED | FAILED
    exit_code: int | None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256 when the status was written
    allow_unverified: bool = False  # the run used an input whose status was not PASSED
    seconds: float = 0.0
    previous: "RunStatus | None" = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return self.status == "PASSED" and not self.allow_unverified

    @property
    def producer(self) -> "RunStatus | None":
        """The build/export run that made the directory's graph (``self``, or the status a validate replaced)."""
        if self.command in PRODUCERS:
            return self
        return self.previous.producer if self.previous is not None else None

    def describe(self) -> str:
        text = f"{self.command} {self.status}"
        if self.allow_unverified:
            text += " (made from an unverified input with --allow-unverified)"
        return text + (f" - {self.error}" if self.error else "")

    @classmethod
    def from_dict(cls, d: dict) -> "RunStatus":
        prev = d.get("previous")
        return cls(d["command"], d["status"], d.get("exit_code"), d.get("error"), dict(d.get("details") or {}),
                   dict(d.get("files") or {}), bool(d.get("allow_unverified", False)), float(d.get("seconds", 0)),
                   cls.from_dict(prev) if prev else None, d)


def snapshot_files(root: str | os.PathLike) -> dict[str, str]:
    """sha256 of every regular file under ``root`` except status.json, hidden files and temp files."""
    root = Path(root)
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if (p.is_symlink() or not p.is_file() or rel == Path("status.json")
                or any(part.startswith(".") for part in rel.parts) or p.name.endswith(TEMP_SUFFIX)):
            continue
        out[rel.as_posix()] = sha256_file(p)
    return out


def write_status(root: str | os.PathLike, command: str, status: str, *, started: float,
                 error: BaseException | str | None = None, exit_code: int | None = None,
                 details: dict[str, Any] | None = None, previous: RunStatus | None = None,
                 allow_unverified: bool = False, files: dict[str, str] | None = None) -> RunStatus:
    """Write ROOT/status.json (atomically, and after every artifact) and return it parsed.

    ``started`` is the run's ``time.monotonic()`` start. ``exit_code`` defaults to 0 for PASSED, None for
    RUNNING and the code of ``error`` for FAILED. ``files`` defaults to a snapshot of ROOT.
    """
    if status not in ("RUNNING", "PASSED", "FAILED"):
        raise ValueError(f"status must be RUNNING, PASSED or FAILED, not {status!r}")
    if exit_code is None and status != "RUNNING":
        exit_code = 0 if status == "PASSED" else (exit_code_for(error) if isinstance(error, BaseException) else 1)
    data = {
        "schema": STATUS_SCHEMA,
        "command": command,
        "status": status,
        "exit_code": exit_code,
        "error": one_line(error) if isinstance(error, BaseException) else error,
        "allow_unverified": allow_unverified,
        "details": details or {},
        "files": snapshot_files(root) if files is None else files,
        "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 2),
        "resvit_export": __version__,
        "host": platform.node(),
        "previous": _strip(previous.raw) if previous is not None else None,
    }
    check_document(data, STATUS, "status.json (being written)")  # a writer bug must not produce a bad file
    write_json_atomic(BuildLayout(root).status, data)
    return RunStatus.from_dict(data)


def _strip(prev: dict) -> dict:
    """A replaced status kept inside the new one: its own ``previous`` is dropped (one level is enough)."""
    return {**prev, "previous": None}


def read_status(root: str | os.PathLike) -> RunStatus | None:
    """ROOT/status.json parsed and schema-checked; None when there is none. Malformed -> InvalidArtifactError."""
    path = BuildLayout(root).status
    if not path.is_file():
        return None
    return RunStatus.from_dict(read_json_document(path, STATUS))


def require_passed(root: str | os.PathLike, allow_unverified: bool = False, *, consumes: Iterable[str] = (),
                   producer_only: bool = False) -> RunStatus | None:
    """The status of ROOT, refused unless PASSED, and every file in ``consumes`` checked against its sha256.

    ``producer_only``: judge the build/export that made the graph, not a later validate (``validate`` re-runs
    after a failed validate). ``allow_unverified`` lets a non-PASSED (or missing) status through; a file that
    no longer matches its recorded sha256 is refused regardless.
    """
    root = Path(root)
    st = read_status(root)
    where = BuildLayout(root).status
    if st is None:
        if allow_unverified:
            return None
        raise InvalidArtifactError(f"{root} has no status.json, so nothing says it is a finished resvit-export "
                                   f"output; rebuild it, or {ALLOW_UNVERIFIED_HINT}")
    verdict = st.producer if producer_only else st
    if verdict is None:
        verdict = st
    if not verdict.passed and not allow_unverified:
        raise InvalidArtifactError(f"{where} says {verdict.describe()}; only a PASSED output is used - rebuild "
                                   f"it, or {ALLOW_UNVERIFIED_HINT}")
    problems = verify_files(root, st, consumes)
    if problems:
        raise InvalidArtifactError(f"{root}: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1
                                                                else "") + "; rebuild it or restore the file")
    return st


def verify_files(root: Path, st: RunStatus, names: Iterable[str]) -> list[str]:
    """Problems with ``names`` against the sha256 that ``st`` recorded (empty: all match)."""
    problems = []
    for name in names:
        name = Path(name).as_posix()
        recorded = st.files.get(name)
        path = root / name
        if recorded is None:
            problems.append(f"{name} is not recorded in status.json (added after the run)")
        elif not path.is_file():
            problems.append(f"{name} recorded in status.json is missing")
        elif sha256_file(path) != recorded:
            problems.append(f"{name} was modified after the run (its sha256 no longer matches status.json)")
    return problems
