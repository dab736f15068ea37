"""One run per output folder: an exclusive ``flock`` on ``<folder>/.lock`` holding the holder's pid and host.

A second run into the same folder fails at once with :class:`OutputLockedError`, one line naming
the holder's pid and host. The kernel drops the lock when its holder dies (even by ``kill -9``), so
a lock is never stale: a later run takes it and overwrites the file's contents. The file is removed
on release; a run that opened it just before checks after locking that the path is still its file.
Under ``torchrun`` only the local process group's rank 0 (``RANK`` 0 or unset) takes the lock: the
ranks of one run share its folder, and a second launch's rank 0 fails and so stops its group.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from maedfer.io_utils import write_error

LOCK_NAME = ".lock"


class OutputLockedError(RuntimeError):
    """Another live process holds the output folder's lock."""


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return text or "unknown pid and host"


def takes_lock() -> bool:
    """Whether this process takes the lock: not a ``torchrun`` rank other than 0."""
    return os.environ.get("RANK", "0") == "0"


@contextlib.contextmanager
def hold_output(folder: str | os.PathLike, what: str = "run") -> Iterator[Path]:
    """Create ``folder`` if needed and hold its lock for the block; yields the folder.

    :class:`OutputLockedError` when another process holds it; a :class:`maedfer.io_utils.WriteError`
    (one line naming the folder) when the folder cannot be created or written.
    """
    folder = Path(folder)
    path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(folder, exc) from exc
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise write_error(path, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise write_error(path, exc) from exc
            raise OutputLockedError(
                f"{folder}: another {what} is writing this folder ({_holder(path)}, lock {path}); wait for it to "
                "finish or stop it, or choose another --out"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file between our open and our lock: take the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode())
    except OSError as exc:
        os.close(fd)
        raise write_error(path, exc) from exc
    try:
        yield folder
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)  # releases the lock
