"""Atomic file writing: outputs go to a temporary name in the same folder, then are renamed.

The temporary file is ``.<name>.<8 random characters><suffix>`` beside the target, created with the
mode the umask gives (not ``mkstemp``'s 0600, so group-mates can read shards and models). A failed
write (an ``OSError``, or torch's ``unexpected pos`` when the disk fills) becomes a :class:`WriteError`:
one line naming the path and the errno ("disk full" with the bytes needed when known). Temporaries
left by a killed writer are removed by :func:`remove_stale_temporaries` (callers that own the folder).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)?$")  # what atomic_path creates


class WriteError(OSError):
    """A write that failed; ``str()`` is one line naming the path, the errno and what to do."""

    def __init__(self, code: int, message: str) -> None:
        """Keep ``errno`` (``code``) and the one-line ``message``."""
        super().__init__(code, message)
        self.message = message

    def __str__(self) -> str:
        """The one-line message."""
        return self.message


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: read by setting (and restoring) it
    os.umask(mask)
    return mask


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def format_bytes(n: float, byte_unit: str = "bytes") -> str:
    """A byte count for people: ``512 bytes``, ``400.0 KB``, ``1.2 GB`` (powers of 1000; ``byte_unit`` below 1 KB)."""
    for unit in (byte_unit, "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == byte_unit else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def write_error(path: str | os.PathLike, exc: BaseException, needed: int | None = None) -> WriteError:
    """The one-line :class:`WriteError` for ``exc`` raised while writing ``path`` (``needed``: bytes, if known)."""
    path = Path(path)
    free = _free_bytes(path.parent) if path.parent.exists() else None
    code = getattr(exc, "errno", None)
    if code is None:  # torch's stream writer raises RuntimeError ("unexpected pos ..."), no errno
        full = free is not None and (free < (needed or 0) or free < 1 << 20)
        code = errno.ENOSPC if full else errno.EIO
    if code in (errno.ENOSPC, errno.EDQUOT):
        what = "disk full" if code == errno.ENOSPC else "disk quota exceeded"
        need = f"{format_bytes(needed)} needed, " if needed else ""
        have = f"{format_bytes(free)} free" if free is not None else "free space unknown"
        return WriteError(code, f"{path}: cannot write: {what} ({need}{have}); free some space and run again")
    name = errno.errorcode.get(code, str(code))
    reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
    return WriteError(code, f"{path}: cannot write ({name}: {reason})")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None, needed: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file keeps the target's suffix (so libraries that dispatch on the
    extension keep working). On error the temporary file is removed and ``path`` is untouched;
    an ``OSError`` becomes a :class:`WriteError` naming ``path`` (``needed``: bytes, for "disk full").
    """
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or (path.suffix or ".tmp"), dir=path.parent)
        tmp_path = Path(tmp)
        try:
            os.fchmod(fd, 0o666 & ~_umask())
        finally:
            os.close(fd)
        yield tmp_path
        os.replace(tmp_path, path)
    except WriteError:
        raise
    except OSError as exc:
        raise write_error(path, exc, needed) from exc
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of atomic writes killed mid-way in ``folder`` (not recursive).

    Only for the folder's owner (a run holding its lock): another writer's temporary would go too.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if _TEMP.match(entry.name) and entry.is_file() and not entry.is_symlink():
            log.info("removing %s left by a write that was killed mid-way", entry)
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path, needed=len(text.encode())) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def _tensor_bytes(obj: Any) -> int:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def save_torch_atomic(obj: Any, path: str | os.PathLike) -> None:
    """Save ``obj`` with torch.save to ``path`` atomically (a failed write is a :class:`WriteError`)."""
    import torch

    needed = _tensor_bytes(obj)
    with atomic_path(path, needed=needed) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:  # the zip stream writer: "unexpected pos ...", "file write failed"
            text = str(exc).lower()
            if "unexpected pos" not in text and "write" not in text:
                raise
            raise write_error(path, exc, needed) from exc
