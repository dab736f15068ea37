"""The destination folder: its manifest, its lock, and placing local entries in it."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from maedfer.data.acquire.archives import EXTRACT_PREFIX
from maedfer.data.acquire.download import DOWNLOADS_DIR
from maedfer.data.acquire.errors import AcquireError

log = logging.getLogger(__name__)

MANIFEST_NAME = ".acquire.json"
_LOCK_NAME = ".acquire.lock"


def place_folder(src: Path, dest: Path, copy: bool) -> tuple[str, ...]:
    """Place every entry of the folder ``src`` in ``dest`` (symlinks, or copies); returns their names."""
    names = sorted(e.name for e in src.iterdir() if e.name not in (MANIFEST_NAME, _LOCK_NAME, DOWNLOADS_DIR))
    if not names:
        raise AcquireError(f"{src}: the folder is empty")
    for name in names:
        _place_entry(src / name, dest / name, copy)
    return tuple(names)


def place_file(src: Path, dest: Path, copy: bool) -> tuple[str, ...]:
    """Place the file ``src`` in ``dest`` (a symlink, or a copy); returns its name."""
    _place_entry(src, dest / src.name, copy)
    return (src.name,)


def _place_entry(src: Path, dst: Path, copy: bool) -> None:
    target = src.resolve()
    if dst.is_symlink() and not copy and Path(os.readlink(dst)) == target:
        return
    if os.path.lexists(dst):
        raise AcquireError(f"{dst} already exists (not from {src}); remove it or choose another --dest")
    if not copy:
        os.symlink(target, dst, target_is_directory=target.is_dir())
        return
    tmp = dst.with_name(f"{EXTRACT_PREFIX}{dst.name}")
    if target.is_dir():
        shutil.copytree(target, tmp, symlinks=True)
    else:
        shutil.copy2(target, tmp)
    os.replace(tmp, dst)


def read_manifest(dest: Path) -> dict:
    """The manifest of ``dest``, an empty one when there is none yet."""
    path = dest / MANIFEST_NAME
    if not path.exists():
        return {"version": 1, "sources": {}}
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise AcquireError(f"{path}: damaged manifest ({exc}); delete it to acquire again") from exc
    manifest.setdefault("sources", {})
    return manifest


@contextmanager
def locked(dest: Path) -> Iterator[None]:
    """Hold the lock of ``dest`` (an :class:`AcquireError` when another process holds it)."""
    with open(dest / _LOCK_NAME, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AcquireError(f"{dest}: another acquisition is running into this folder; wait for it") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def remove_stale_temporaries(dest: Path) -> None:
    """Remove the temporary folders and copies an interrupted run left in ``dest``."""
    for entry in dest.iterdir():
        if entry.name.startswith(EXTRACT_PREFIX):
            log.info("removing %s left by an interrupted run", entry)
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink()


def remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` when it is empty."""
    try:
        folder.rmdir()
    except OSError:
        pass
