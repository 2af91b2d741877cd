"""Artifact I/O: atomic writes (every file, copies included), output-directory policy, hashing.

Every artifact goes through :func:`atomic_path`: written under a temp name next to its final name and renamed
only when complete, so no file under a final name is ever truncated. A full disk becomes one
:class:`~resvit_export.errors.DiskFullError` naming the file and the space left.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import DiskFullError, OutputDirError, is_disk_full

__all__ = ["atomic_path", "write_json_atomic", "copy_atomic", "prepare_output_dir", "is_resvit_output",
           "sha256_file", "disk_full_error", "TEMP_SUFFIX"]

# Temp files of atomic writes end with this; they are never artifacts (hashing and bundling skip them).
TEMP_SUFFIX = ".partial"


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``final``; rename it into place only if the block succeeds.

    An interrupted or failed step therefore never leaves a file that looks complete.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=TEMP_SUFFIX)
    except OSError as err:
        raise (disk_full_error(final, err) if is_disk_full(err) else err) from err
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp creates 0600; give artifacts the usual umask-based mode unless the caller set one (e.g. +x).
        if tmp.exists() and (tmp.stat().st_mode & 0o777) == 0o600:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, final)
    except OSError as err:
        if is_disk_full(err):
            raise disk_full_error(final, err) from err
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def disk_full_error(path: str | os.PathLike, err: OSError | None = None) -> DiskFullError:
    """One line: which file could not be written and how much space is left where it goes."""
    path = Path(path)
    where = path.parent if path.parent.exists() else Path.cwd()
    try:
        free = f"{shutil.disk_usage(where).free / (1 << 20):.1f} MiB free"
    except OSError:
        free = "free space unknown"
    reason = "disk quota exceeded" if err is not None and err.errno == getattr(errno, "EDQUOT", -1) \
        else "no space left on device"
    return DiskFullError(f"{reason} while writing {path} ({free} on {where}); free some space or choose another -o")


def copy_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy ``src`` to ``dst`` through a temp file, so a failed copy never leaves a truncated ``dst``."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    return Path(path)


def is_resvit_output(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a status.json written by resvit-export (any command, any verdict)."""
    import json

    try:
        data = json.loads((Path(path) / "status.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("command") in ("build", "export", "validate", "calibrate")


def check_output_dir(path: str | os.PathLike, force: bool = False) -> Path:
    """Refuse ``path`` as an output directory before any work: a file, a non-empty directory without
    ``force``, or - even with ``force`` - a non-empty directory that resvit-export did not write."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"output path {path} exists and is not a directory; choose another -o")
    if path.is_dir() and any(path.iterdir()):
        if not force:
            raise OutputDirError(f"output directory {path} is not empty; pass --force to overwrite it or choose another -o")
        if not is_resvit_output(path):
            raise OutputDirError(f"output directory {path} is not empty and holds no resvit-export status.json; "
                                 "--force only replaces an earlier resvit-export output - choose another -o")
    return path


def prepare_output_dir(path: str | os.PathLike, force: bool = False) -> Path:
    """Create ``path`` after :func:`check_output_dir`; with ``force`` an earlier resvit-export output in it is
    removed first. (``build`` and ``export`` stage instead: see :mod:`resvit_export.staging`.)"""
    path = check_output_dir(path, force)
    if path.is_dir() and force:
        for child in path.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise OutputDirError(f"cannot write to output directory {path} ({err.strerror}); choose another -o") from err
    return path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
