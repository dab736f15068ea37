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

A dataset's ``source`` in a params file (the DAG's acquire stage) goes through :mod:`.sources` (the spec
resolved into items; the built-in :mod:`.catalogue` of the owners' distributions; credentials from the
environment) and :mod:`.bring` (download or join, verify md5 / sha256 or record it, extract with
:mod:`.tools` for 7z / rar / split archives, and the stage's ``.acquired.json`` marker).
"""

from __future__ import annotations

import logging
import os
import shutil
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from maedfer.data.acquire.archives import ARCHIVE_SUFFIXES, extract_into, is_archive, safe_extract
from maedfer.data.acquire.checksums import check_sha256, normalise_sha256, sha256_of
from maedfer.data.acquire.download import DOWNLOADS_DIR, download, download_path, url_file_name
from maedfer.data.acquire.errors import AcquireError, ChecksumError, UnsafeArchiveError
from maedfer.data.acquire.store import (
    MANIFEST_NAME,
    locked,
    place_file,
    place_folder,
    remove_if_empty,
    remove_stale_temporaries,
)
from maedfer.data.acquire.store import read_manifest as _read_manifest
from maedfer.io_utils import write_json_atomic

log = logging.getLogger(__name__)

__all__ = [
    "ARCHIVE_SUFFIXES",
    "DOWNLOADS_DIR",
    "MANIFEST_NAME",
    "AcquireError",
    "AcquireResult",
    "ChecksumError",
    "UnsafeArchiveError",
    "acquire",
    "acquire_many",
    "download_path",
    "is_archive",
    "read_manifest",
    "safe_extract",
    "sha256_of",
]


@dataclass(frozen=True)
class AcquireResult:
    """What :func:`acquire` did for one source."""

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
        """True when the source was already complete in ``dest`` and nothing was done."""
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
    expected = normalise_sha256(sha256, source)
    dest.mkdir(parents=True, exist_ok=True)
    with locked(dest):
        remove_stale_temporaries(dest)
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
        entries = place_folder(path, dest, copy)
        return AcquireResult(source, dest, "folder", "copied" if copy else "linked", entries=entries)
    size, digest = path.stat().st_size, sha256_of(path)
    check_sha256(source, digest, expected, path)
    if is_archive(path):
        entries = extract_into(path, dest)
        return AcquireResult(source, dest, "archive", "extracted", size, digest, entries=entries)
    entries = place_file(path, dest, copy)
    return AcquireResult(source, dest, "file", "copied" if copy else "linked", size, digest, entries=entries)


def _acquire_url(
    url: str, dest: Path, expected: str | None, keep_download: bool, timeout: float, retries: int
) -> AcquireResult:
    final = download_path(url, dest)
    downloads, name = final.parent, url_file_name(url)
    downloads.mkdir(exist_ok=True)
    part = final.with_name(final.name + ".part")
    fetched = 0
    if not final.is_file():
        fetched = download(url, part, timeout, retries)
        os.replace(part, final)
    size, digest = final.stat().st_size, sha256_of(final)
    check_sha256(url, digest, expected, final)
    if is_archive(final):
        entries = extract_into(final, dest)
        if not keep_download:
            final.unlink()
    else:
        target = dest / name
        if keep_download:
            shutil.copy2(final, target)
        else:
            os.replace(final, target)
        entries = (name,)
    remove_if_empty(downloads)
    return AcquireResult(url, dest, "url", "downloaded", size, digest, downloaded_bytes=fetched, entries=entries)
