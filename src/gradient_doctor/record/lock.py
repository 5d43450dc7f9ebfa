"""One writer per log_dir: an exclusive advisory lock on ``LOG_DIR/run.lock``, held while a run records.

    >>> lock = WriterLock.acquire(Path("runs/a"))   # RecordError while another run writes runs/a
    >>> lock.release()

Two `gd.watch(..., resume=True)` on one log_dir would interleave their steps into one record; the second one is
refused instead. The operating system drops the lock when its holder ends, also on SIGKILL, so a killed run can be
resumed at once. Readers (`gd.load`) never take it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import RecordError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

LOCK_FILENAME = "run.lock"


class WriterLock:
    """The held lock: `release()` (idempotent) lets the next writer in."""

    def __init__(self, fd: int, path: Path):
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, directory: Path) -> "WriterLock":
        """Take the lock of `directory` (which exists) without waiting; RecordError when another run holds it."""
        path = directory / LOCK_FILENAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise RecordError(f"cannot write a run record in {str(directory)!r}: {err}") from err
        try:
            _lock(fd)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RecordError(
                f"log_dir {str(directory)!r} is being written by another run ({holder}); one log_dir takes one "
                "writer at a time. Wait for it to end, or choose another log_dir."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return cls(fd, path)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            _unlock(fd)
        finally:
            os.close(fd)


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # per open file: also refuses a second writer in this process
    else:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _read_holder(fd: int) -> str:
    """'process N' from the pid the holder wrote, or 'another process' when it cannot be read."""
    try:
        pid = os.pread(fd, 32, 0).decode().strip() if hasattr(os, "pread") else ""
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"
