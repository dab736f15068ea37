"""Acquisition: bring a dataset into ``dest`` from a local folder, a local archive or an http(s) URL.

* Local folder: each top-level entry is symlinked into ``dest`` (or copied with ``copy=True``).
* Local archive (zip, tar, tar.gz/tgz, tar.bz2, tar.xz): extracted into ``dest``. Any member whose
  path is absolute or escapes the target folder, any link pointing outside it and any special file
  (device, fifo) is refused with an :class:`UnsafeArchiveError` naming the archive and the member.
* URL: downloaded with the standard library into ``dest/.downloads/<name>.part``, resumed with an
  HTTP Range request after an interruption, renamed when complete, checked against ``sha256`` when
  given, then extracted if it is an archive (the downloaded archive is removed afterwards unless
  ``keep_download=True``).

Every completed source is recorded in the manifest ``dest/.acquire.json`` (source, url, size, sha256,
time, top-level entries): it is the completion marker. Archives are extracted into a temporary folder
inside ``dest`` and their entries renamed into place afterwards; the manifest entry is written last,
so an interrupted run is redone on the next call. A source already in the manifest whose entries
are all present is not touched again. A lock file serialises concurrent calls on the same ``dest``.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import logging
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from maedfer.io_utils import write_json_atomic

log = logging.getLogger(__name__)

MANIFEST_NAME = ".acquire.json"
DOWNLOADS_DIR = ".downloads"
_LOCK_NAME = ".acquire.lock"
_EXTRACT_PREFIX = ".extract-"
_CHUNK = 1 << 20
ARCHIVE_SUFFIXES: tuple[str, ...] = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_USER_AGENT = "maedfer-acquire/1"


class AcquireError(ValueError):
    """A source could not be acquired (one line: what, where, and how to fix it)."""


class ChecksumError(AcquireError):
    """The sha256 of a file differs from the expected one."""


class UnsafeArchiveError(AcquireError):
    """An archive member would be written outside the target folder (or is a special file)."""


@dataclass(frozen=True)
class AcquireResult:
    source: str
    dest: Path
    kind: str  # "url" | "archive" | "folder" | "file"
    action: str  # "present" (nothing done) | "linked" | "copied" | "extracted" | "downloaded"
    size: int | None = None  # bytes of the archive / file (None for folders)
    sha256: str | None = None  # of the archive / file (None for folders)
    downloaded_bytes: int = 0  # bytes fetched over the network by this call
    entries: tuple[str, ...] = ()  # top-level names it placed in dest

    @property
    def already_present(self) -> bool:
        return self.action == "present"


# ------------------------------------------------------------------------------------- public API
def acquire(
    source: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    *,
    copy: bool = False,
    keep_download: bool = False,
    timeout: float = 60.0,
    retries: int = 3,
) -> AcquireResult:
    """Bring ``source`` (a local folder, a local archive/file, or an http(s) URL) into ``dest``.

    ``sha256`` (hex) is checked for archives, files and downloads when given. Folders are
    symlinked entry by entry unless ``copy`` is set. Re-running with everything present does nothing.
    """
    dest = Path(dest).expanduser()
    expected = _normalise_sha256(sha256, source)
    dest.mkdir(parents=True, exist_ok=True)
    with _locked(dest):
        _remove_stale_temporaries(dest)
        manifest = _read_manifest(dest)
        key = _source_key(source)
        done = manifest["sources"].get(key)
        if done is not None and all(os.path.lexists(dest / name) for name in done.get("entries", [])):
            if expected and done.get("sha256") and done["sha256"] != expected:
                raise ChecksumError(
                    f"{source}: sha256 {done['sha256']} recorded in {dest / MANIFEST_NAME} differs from the expected "
                    f"{expected}; check the --sha256 value"
                )
            log.info("%s: already present in %s", source, dest)
            return AcquireResult(
                source=source,
                dest=dest,
                kind=done.get("kind", "?"),
                action="present",
                size=done.get("size"),
                sha256=done.get("sha256"),
                entries=tuple(done.get("entries", [])),
            )
        if _is_url(source):
            result = _acquire_url(source, dest, expected, keep_download, timeout, retries)
        else:
            result = _acquire_local(source, dest, expected, copy)
        entry = {
            "source": source,
            "kind": result.kind,
            "action": result.action,
            "size": result.size,
            "sha256": result.sha256,
            "entries": list(result.entries),
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if result.kind == "url":
            entry["url"] = source
        manifest["sources"][key] = entry
        write_json_atomic(dest / MANIFEST_NAME, manifest)
        return result


def acquire_many(
    sources: Sequence[str],
    dest: str | os.PathLike,
    sha256s: Sequence[str | None] | None = None,
    **kwargs: object,
) -> list[AcquireResult]:
    """:func:`acquire` for several sources into one ``dest`` (e.g. RAVDESS's one zip per actor)."""
    if not sources:
        raise AcquireError("no source given; pass at least one folder, archive or URL")
    if sha256s is not None and len(sha256s) not in (0, len(sources)):
        raise AcquireError(f"{len(sha256s)} sha256 values for {len(sources)} sources; give one per source or none")
    checks = list(sha256s) if sha256s else [None] * len(sources)
    return [acquire(src, dest, sha, **kwargs) for src, sha in zip(sources, checks, strict=True)]  # type: ignore[arg-type]


def read_manifest(dest: str | os.PathLike) -> dict:
    """The manifest of ``dest`` (``{"version": 1, "sources": {key: entry}}``)."""
    return _read_manifest(Path(dest))


def is_archive(path: str | os.PathLike) -> bool:
    """Archive by name (zip / tar / tar.gz / ...) or, for other names, by content."""
    name = str(path).lower()
    if name.endswith(ARCHIVE_SUFFIXES):
        return True
    return Path(path).is_file() and (zipfile.is_zipfile(path) or _is_tar(Path(path)))


def download_path(url: str, dest: str | os.PathLike) -> Path:
    """Where a download of ``url`` into ``dest`` is kept (``<that>.part`` while incomplete)."""
    # the URL's hash keeps two URLs with the same file name apart
    return Path(dest) / DOWNLOADS_DIR / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{_url_file_name(url)}"


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike) -> None:
    """Extract ``archive`` into the folder ``target``, refusing members that would land outside it."""
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, target)
        elif _is_tar(archive):
            _extract_tar(archive, target)
        else:
            raise AcquireError(f"{archive}: not a zip or tar archive (or it is damaged); check the file")
    except (zipfile.BadZipFile, tarfile.ReadError, EOFError) as exc:
        raise AcquireError(f"{archive}: damaged archive ({exc}); download it again") from exc


# ------------------------------------------------------------------------------------- sources
def _is_url(source: str) -> bool:
    return urllib.parse.urlparse(source).scheme.lower() in ("http", "https")


def _source_key(source: str) -> str:
    if _is_url(source):
        return source
    return str(Path(_local_path(source)).expanduser().resolve())


def _local_path(source: str) -> str:
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme.lower() == "file":
        return urllib.parse.unquote(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:  # not a Windows drive letter
        raise AcquireError(f"{source}: unsupported URL scheme {parsed.scheme!r}; use http(s) or a local path")
    return source


def _acquire_local(source: str, dest: Path, expected: str | None, copy: bool) -> AcquireResult:
    path = Path(_local_path(source)).expanduser()
    if not path.exists():
        raise AcquireError(f"{source}: no such file or folder; pass an existing folder, archive or an http(s) URL")
    if path.is_dir():
        if expected:
            raise AcquireError(f"{source}: --sha256 applies to files and archives, not folders")
        if path.resolve() == dest.resolve() or dest.resolve().is_relative_to(path.resolve()):
            raise AcquireError(f"{source}: the source folder contains the destination {dest}; pick another --dest")
        entries = _place_folder(path, dest, copy)
        return AcquireResult(source, dest, "folder", "copied" if copy else "linked", entries=entries)
    size, digest = path.stat().st_size, sha256_of(path)
    _check_sha256(source, digest, expected, path)
    if is_archive(path):
        entries = _extract_into(path, dest)
        return AcquireResult(source, dest, "archive", "extracted", size, digest, entries=entries)
    entries = _place_file(path, dest, copy)
    return AcquireResult(source, dest, "file", "copied" if copy else "linked", size, digest, entries=entries)


def _acquire_url(
    url: str, dest: Path, expected: str | None, keep_download: bool, timeout: float, retries: int
) -> AcquireResult:
    final = download_path(url, dest)
    downloads, name = final.parent, _url_file_name(url)
    downloads.mkdir(exist_ok=True)
    part = final.with_name(final.name + ".part")
    fetched = 0
    if not final.is_file():
        fetched = _download(url, part, timeout, retries)
        os.replace(part, final)
    size, digest = final.stat().st_size, sha256_of(final)
    _check_sha256(url, digest, expected, final)
    if is_archive(final):
        entries = _extract_into(final, dest)
        if not keep_download:
            final.unlink()
    else:
        target = dest / name
        if keep_download:
            shutil.copy2(final, target)
        else:
            os.replace(final, target)
        entries = (name,)
    _remove_if_empty(downloads)
    return AcquireResult(url, dest, "url", "downloaded", size, digest, downloaded_bytes=fetched, entries=entries)


def _url_file_name(url: str) -> str:
    name = urllib.parse.unquote(posixpath.basename(urllib.parse.urlparse(url).path)).strip()
    name = name.replace("\\", "_").lstrip(".")
    return name or "download"


# ------------------------------------------------------------------------------------- download
def _download(url: str, part: Path, timeout: float, retries: int) -> int:
    """Download ``url`` into ``part`` (resuming what is there); returns the bytes fetched now."""
    fetched, attempt = 0, 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        try:
            got, complete = _download_once(url, part, have, timeout)
            fetched += got
            if complete:
                return fetched
            problem = "connection closed before the end of the file"
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have > 0:
                total = _content_range_total(exc.headers.get("Content-Range", ""))
                if total == have:
                    return fetched  # the .part file already holds the whole file
                log.warning("%s: server refused to resume at byte %d; starting again", url, have)
                part.unlink()
                continue
            raise AcquireError(f"{url}: HTTP {exc.code} {exc.reason}; check the URL (and your access to it)") from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            problem = str(getattr(exc, "reason", exc))
        attempt += 1
        if attempt > retries:
            raise AcquireError(
                f"{url}: download interrupted ({problem}); {part.stat().st_size if part.exists() else 0} bytes "
                f"kept in {part}; run again to resume"
            )
        log.warning("%s: %s; resuming (attempt %d of %d)", url, problem, attempt, retries)
        time.sleep(min(2.0**attempt, 30.0) * 0.1)


def _download_once(url: str, part: Path, have: int, timeout: float) -> tuple[int, bool]:
    """One request; returns (bytes written, whether the file is complete)."""
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        status = response.status
        if have and status == 206:
            start = _content_range_start(response.headers.get("Content-Range", ""))
            if start != have:
                raise AcquireError(f"{url}: server resumed at byte {start}, expected {have}; delete {part} and retry")
            mode = "ab"
        else:
            if have:
                log.info("%s: server does not support resuming; downloading from the start", url)
            have, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None and length.isdigit() else None
        written = 0
        with (
            open(part, mode) as f,
            tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=_url_file_name(url), disable=None) as bar,
        ):
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
    return written, total is None or have + written == total


def _content_range_start(header: str) -> int | None:
    # "bytes 100-199/200"
    try:
        return int(header.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _content_range_total(header: str) -> int | None:
    # "bytes */200"
    try:
        return int(header.rsplit("/", 1)[1])
    except (IndexError, ValueError):
        return None


# ------------------------------------------------------------------------------------- checksums
def _normalise_sha256(sha256: str | None, source: str) -> str | None:
    if sha256 is None or not sha256.strip():
        return None
    value = sha256.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise AcquireError(f"{source}: sha256 {sha256!r} is not 64 hexadecimal digits")
    return value


def _check_sha256(source: str, digest: str, expected: str | None, path: Path) -> None:
    if expected and digest != expected:
        raise ChecksumError(
            f"{source}: sha256 mismatch: expected {expected}, got {digest} (file kept at {path}; delete it to "
            f"download again, or correct the expected value)"
        )


# ------------------------------------------------------------------------------------- archives
def _is_tar(path: Path) -> bool:
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
        for rel, link in links:
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(link, path)


def _extract_into(archive: Path, dest: Path) -> tuple[str, ...]:
    """Extract into a temporary folder inside ``dest``, then rename the entries into place."""
    tmp = Path(tempfile.mkdtemp(prefix=_EXTRACT_PREFIX, dir=dest))
    try:
        log.info("extracting %s into %s", archive, dest)
        safe_extract(archive, tmp)
        entries = tuple(sorted(e.name for e in tmp.iterdir()))
        if not entries:
            raise AcquireError(f"{archive}: the archive is empty")
        for name in entries:
            _merge(tmp / name, dest / name)
        return entries
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _merge(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst``; folders are merged, files replace files."""
    src_is_dir = src.is_dir() and not src.is_symlink()
    if src_is_dir and dst.is_symlink():
        raise AcquireError(
            f"{dst} is a link (to {os.readlink(dst)}); will not write archive contents through it; remove the link"
        )
    if src_is_dir and dst.is_dir():
        for child in sorted(src.iterdir()):
            _merge(child, dst / child.name)
        return
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    elif os.path.lexists(dst):
        dst.unlink()
    os.replace(src, dst)


# ------------------------------------------------------------------------------------- local folders/files
def _place_folder(src: Path, dest: Path, copy: bool) -> tuple[str, ...]:
    names = sorted(e.name for e in src.iterdir() if e.name not in (MANIFEST_NAME, _LOCK_NAME, DOWNLOADS_DIR))
    if not names:
        raise AcquireError(f"{src}: the folder is empty")
    for name in names:
        _place_entry(src / name, dest / name, copy)
    return tuple(names)


def _place_file(src: Path, dest: Path, copy: bool) -> tuple[str, ...]:
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
    tmp = dst.with_name(f"{_EXTRACT_PREFIX}{dst.name}")
    if target.is_dir():
        shutil.copytree(target, tmp, symlinks=True)
    else:
        shutil.copy2(target, tmp)
    os.replace(tmp, dst)


# ------------------------------------------------------------------------------------- manifest, lock
def _read_manifest(dest: Path) -> dict:
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
def _locked(dest: Path) -> Iterator[None]:
    with open(dest / _LOCK_NAME, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AcquireError(f"{dest}: another acquisition is running into this folder; wait for it") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _remove_stale_temporaries(dest: Path) -> None:
    for entry in dest.iterdir():
        if entry.name.startswith(_EXTRACT_PREFIX):
            log.info("removing %s left by an interrupted run", entry)
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink()


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
