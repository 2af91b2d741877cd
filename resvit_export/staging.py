"""Output directories that only ever show a finished run: a lock, a staging directory, and a swap.

``build`` and ``export`` never write into ``-o DIR`` itself. Next to it they use::

    .DIR.lock             held (flock) for the whole run: a second run into DIR is refused, not interleaved
    .DIR.staging-XXXX     where the run writes; DIR is replaced by it only at the end
    .DIR.old-XXXX         DIR's previous content for the instant of the swap, then deleted

So a ``--force`` rebuild killed at any point leaves the previous output exactly as it was, and never a
status.json over files of another run. A killed run's staging directory (and an ``old`` directory, should a
kill land between the swap's two renames) is cleaned up - or put back - by the next run under the lock.
Commands that update a directory in place (``validate``) take the same lock with :func:`output_lock`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import OutputDirError, OutputLockedError
from .io import check_output_dir

__all__ = ["output_lock", "staged_output", "StagedOutput", "recover_interrupted"]


def _sibling(target: Path, kind: str) -> str:
    return f".{target.name}.{kind}"


@contextlib.contextmanager
def output_lock(target: str | os.PathLike) -> Iterator[Path]:
    """Hold the exclusive lock of output directory ``target``; refuse at once if another run holds it.
    Whoever gets the lock first cleans up after a killed run (:func:`recover_interrupted`)."""
    import fcntl

    target = Path(target).absolute()
    lock_path = target.parent / (_sibling(target, "lock"))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise OutputDirError(f"cannot create the lock file {lock_path} ({err.strerror}); resvit-export needs to "
                             f"write next to {target.name} - choose another -o or make {target.parent} writable") from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputLockedError(f"another resvit-export run is writing {target} (it holds {lock_path}); "
                                    "wait for it to finish or choose another -o") from None
        recover_interrupted(target)
        yield lock_path
    finally:
        os.close(fd)  # closing releases the flock; the lock file stays (deleting it would race other runs)


def recover_interrupted(target: Path) -> None:
    """Under the lock: delete staging directories of killed runs; put back an output a kill left mid-swap."""
    for stale in target.parent.glob(_sibling(target, "staging-*")):
        shutil.rmtree(stale, ignore_errors=True)
    for old in sorted(target.parent.glob(_sibling(target, "old-*"))):
        if not target.exists():
            os.replace(old, target)
        else:
            shutil.rmtree(old, ignore_errors=True)


class StagedOutput:
    """A run's staging directory. Call :meth:`publish` (success) or :meth:`publish_failed` at the end;
    leaving the ``with`` block without either (an interrupt) deletes it and leaves ``target`` untouched."""

    def __init__(self, target: Path):
        self.target = target
        self.path = Path(tempfile.mkdtemp(dir=target.parent, prefix=_sibling(target, "staging-")))
        os.chmod(self.path, 0o777 & ~_umask())  # mkdtemp makes 0700; the output gets the usual mode
        self.final: Path | None = None

    def publish(self) -> Path:
        """Swap the staging directory in as ``target`` (its previous content is deleted)."""
        old = None
        if self.target.exists():
            old = Path(tempfile.mkdtemp(dir=self.target.parent, prefix=_sibling(self.target, "old-")))
            os.rmdir(old)
            os.replace(self.target, old)
        os.replace(self.path, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self.final = self.target
        return self.target

    def publish_failed(self) -> Path:
        """A FAILED run keeps its artifacts for diagnosis: in ``target`` when that held nothing to lose, else in
        ``target.failed`` next to it, so an earlier output is never replaced by a failed one."""
        if not self.target.exists() or not any(self.target.iterdir()):
            return self.publish()
        failed = self.target.with_name(self.target.name + ".failed")
        if failed.is_dir() and not failed.is_symlink():
            shutil.rmtree(failed)
        elif failed.exists() or failed.is_symlink():
            failed.unlink()
        os.replace(self.path, failed)
        self.final = failed
        return failed

    def fail(self, command: str, started: float, err: BaseException, details: dict) -> Path | None:
        """Write the FAILED status.json and keep the artifacts (:meth:`publish_failed`); return where the status
        went. When even that cannot be written (a full disk) the staging directory is dropped and None returned:
        the caller still reports the original error."""
        from .layout import BuildLayout
        from .status import write_status

        try:
            write_status(self.path, command, "FAILED", started=started, error=err, details=details)
            return BuildLayout(self.publish_failed()).status
        except Exception:  # noqa: BLE001 - the run's own error is the one to report
            self.discard()
            return None

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


@contextlib.contextmanager
def staged_output(target: str | os.PathLike, force: bool = False) -> Iterator[StagedOutput]:
    """Lock ``target``, check it may be written (see :func:`~resvit_export.io.check_output_dir`) and yield a
    :class:`StagedOutput` next to it. Call this only after every option has been validated."""
    target = Path(target)
    if target.is_symlink():
        target = target.resolve()
    target = target.absolute()
    if target.parent == target:
        raise OutputDirError(f"output directory {target} is a file-system root; choose another -o")
    check_output_dir(target, force)
    with output_lock(target):
        check_output_dir(target, force)  # again under the lock: recovery may have put an output back
        stage = StagedOutput(target)
        try:
            yield stage
        finally:
            if stage.final is None:
                stage.discard()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
