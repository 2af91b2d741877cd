"""Artifact I/O: atomic writes, output-directory policy, hashing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import OutputDirError

__all__ = ["atomic_path", "write_json_atomic", "prepare_output_dir", "sha256_file"]


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``final``; rename it into place only if the block succeeds.

    An interrupted or failed step therefore never leaves a file that looks complete.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".partial")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp creates 0600; give artifacts the usual umask-based mode unless the caller set one (e.g. +x).
        if tmp.exists() and (tmp.stat().st_mode & 0o777) == 0o600:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    return Path(path)


def prepare_output_dir(path: str | os.PathLike, force: bool = False) -> Path:
    """Create ``path``; refuse a non-empty directory unless ``force`` (then its contents are removed)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"output path {path} exists and is not a directory; choose another -o")
    if path.is_dir() and any(path.iterdir()):
        if not force:
            raise OutputDirError(f"output directory {path} is not empty; pass --force to overwrite it or choose another -o")
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
