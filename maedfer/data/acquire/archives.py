"""Archives: recognise them and extract them safely (nothing lands outside the target folder)."""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from maedfer.data.acquire.errors import AcquireError, UnsafeArchiveError

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES: tuple[str, ...] = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
EXTRACT_PREFIX = ".extract-"  # temporary folders (and copies) inside the destination


def is_archive(path: str | os.PathLike) -> bool:
    """Archive by name (zip / tar / tar.gz / ...) or, for other names, by content."""
    name = str(path).lower()
    if name.endswith(ARCHIVE_SUFFIXES):
        return True
    return Path(path).is_file() and (zipfile.is_zipfile(path) or is_tar(Path(path)))


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike) -> None:
    """Extract ``archive`` into the folder ``target``, refusing members that would land outside it."""
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, target)
        elif is_tar(archive):
            _extract_tar(archive, target)
        else:
            raise AcquireError(f"{archive}: not a zip or tar archive (or it is damaged); check the file")
    except (zipfile.BadZipFile, tarfile.ReadError, EOFError) as exc:
        raise AcquireError(f"{archive}: damaged archive ({exc}); download it again") from exc


def is_tar(path: Path) -> bool:
    """Whether ``path`` is a readable tar archive."""
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _member_target(archive: Path, name: str) -> str:
    """The normalised relative path of a member, refusing absolute and escaping ones."""
    cleaned = name.replace("\\", "/")
    if cleaned.startswith("/") or (len(cleaned) > 1 and cleaned[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: refusing member {name!r}: absolute path")
    norm = posixpath.normpath(cleaned)
    if norm == ".." or norm.startswith("../"):
        raise UnsafeArchiveError(f"{archive}: refusing member {name!r}: path escapes the target folder")
    return norm


def _check_link(archive: Path, name: str, link: str, relative_to_member: bool) -> None:
    cleaned = link.replace("\\", "/")
    if cleaned.startswith("/") or (len(cleaned) > 1 and cleaned[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: refusing member {name!r}: link to absolute path {link!r}")
    base = posixpath.dirname(_member_target(archive, name)) if relative_to_member else ""
    norm = posixpath.normpath(posixpath.join(base, cleaned))
    if norm == ".." or norm.startswith("../"):
        raise UnsafeArchiveError(f"{archive}: refusing member {name!r}: link {link!r} points outside the target folder")


def _extract_tar(archive: Path, target: Path) -> None:
    # One pass: each member is checked, then extracted (into a temporary folder that is thrown
    # away if a later member is refused). The "data" filter re-checks at extraction time.
    with tarfile.open(archive) as tf:
        for m in tqdm(tf, desc=f"extract {archive.name}", unit=" files", disable=None):
            _member_target(archive, m.name)
            if m.issym():
                _check_link(archive, m.name, m.linkname, relative_to_member=True)
            elif m.islnk():
                _check_link(archive, m.name, m.linkname, relative_to_member=False)
            elif not (m.isfile() or m.isdir()):
                raise UnsafeArchiveError(f"{archive}: refusing member {m.name!r}: special file (device or fifo)")
            try:
                tf.extract(m, target, filter="data")
            except tarfile.FilterError as exc:
                raise UnsafeArchiveError(f"{archive}: refusing member {m.name!r}: {exc}") from exc


def _extract_zip(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        links: list[tuple[str, str]] = []
        for info in zf.infolist():
            rel = _member_target(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                link = zf.read(info).decode("utf-8")
                _check_link(archive, info.filename, link, relative_to_member=True)
                links.append((rel, link))
        infos = zf.infolist()
        for info in tqdm(infos, desc=f"extract {archive.name}", unit=" files", disable=None):
            if not stat.S_ISLNK(info.external_attr >> 16):
                zf.extract(info, target)
        _place_zip_links(archive, target, links)


def _inside(root: Path, path: str) -> bool:
    return path == str(root) or path.startswith(str(root) + os.sep)


def _place_zip_links(archive: Path, target: Path, links: list[tuple[str, str]]) -> None:
    """Create the zip's links, refusing any that resolves outside ``target`` given the links made before it.

    A link is checked as the file system resolves it (``a/b -> ..`` then ``a/b/c -> ../..`` escapes although
    each string stays inside); once all exist, every link is resolved again, as a later link can change
    where an earlier one leads. The caller extracts into a temporary folder that is thrown away on refusal.
    """
    root = target.resolve()
    for rel, link in links:
        path = target / rel
        where = os.path.realpath(path.parent)
        if not _inside(root, where) or not _inside(root, os.path.realpath(os.path.join(where, link))):
            raise UnsafeArchiveError(
                f"{archive}: refusing member {rel!r}: link {link!r} resolves outside the target folder "
                "(through the links before it)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(link, path)
    for rel, link in links:
        if not _inside(root, os.path.realpath(target / rel)):
            raise UnsafeArchiveError(
                f"{archive}: refusing member {rel!r}: link {link!r} resolves outside the target folder "
                "(through a link after it)"
            )


def extract_into(archive: Path, dest: Path, extract: Callable[[Path, Path], None] | None = None) -> tuple[str, ...]:
    """Extract into a temporary folder inside ``dest``, then rename the entries into place.

    ``extract(archive, folder)`` fills the temporary folder (default :func:`safe_extract`; the system tools'
    extraction for 7z / rar / split zips).
    """
    tmp = Path(tempfile.mkdtemp(prefix=EXTRACT_PREFIX, dir=dest))
    try:
        log.info("extracting %s into %s", archive, dest)
        (extract or safe_extract)(archive, tmp)
        entries = tuple(sorted(e.name for e in tmp.iterdir()))
        if not entries:
            raise AcquireError(f"{archive}: the archive is empty")
        for name in entries:
            merge(tmp / name, dest / name)
        return entries
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def merge(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst``; folders are merged, files replace files."""
    src_is_dir = src.is_dir() and not src.is_symlink()
    if src_is_dir and dst.is_symlink():
        raise AcquireError(
            f"{dst} is a link (to {os.readlink(dst)}); will not write archive contents through it; remove the link"
        )
    if src_is_dir and dst.is_dir():
        for child in sorted(src.iterdir()):
            merge(child, dst / child.name)
        return
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    elif os.path.lexists(dst):
        dst.unlink()
    os.replace(src, dst)
