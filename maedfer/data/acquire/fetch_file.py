"""One file (a released checkpoint) from an http(s) URL to a fixed path, its sha256 pinned or recorded.

:func:`fetch_file` downloads ``url`` to ``path`` (resumed after an interruption, through
``<folder>/.downloads/``) and checks its sha256. Without an expected sha256 the first download's is
recorded in the folder's manifest (``.acquire.json``, the same one :func:`~maedfer.data.acquire.acquire`
keeps) and every later call verifies the file against it, so a file that changes afterwards is
found. A file already at ``path`` is verified, not downloaded again. A download that is an HTML
page (a sign-in or "can't scan for viruses" page instead of the file) is refused with the
manual route: download it in a browser and put it at ``path``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from maedfer.data.acquire.checksums import check_sha256, normalise_sha256, sha256_of
from maedfer.data.acquire.download import download, download_path
from maedfer.data.acquire.errors import AcquireError
from maedfer.data.acquire.store import locked, read_manifest, remove_if_empty
from maedfer.io_utils import write_json_atomic

log = logging.getLogger(__name__)

_HTML_STARTS = (b"<!doctype html", b"<html", b"<!DOCTYPE html", b"<HTML")


@dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch_file` did: ``downloaded`` or ``present``; the sha256 and where it came from."""

    path: Path
    action: str  # "downloaded" | "present"
    sha256: str
    checked_against: str  # "params" (the expected value) | "record" (an earlier download's) | "recorded now"
    downloaded_bytes: int = 0


def _looks_like_html(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(512).lstrip()
    return head.startswith(_HTML_STARTS)


def fetch_file(url: str, path: str | os.PathLike, sha256: str | None = None, *, where: str | None = None,
               timeout: float = 60.0, retries: int = 3) -> FetchResult:
    """Download ``url`` to ``path`` unless it is there, then verify it (see the module docstring).

    ``where`` tells a user how to obtain the file by hand (named in the errors).
    """
    path = Path(path)
    expected = normalise_sha256(sha256, url)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    manual = f"; or download it by hand{f' from {where}' if where else ''} and put it at {path}"
    with locked(folder):
        manifest = read_manifest(folder)
        recorded = manifest["sources"].get(url, {}).get("sha256")
        fetched, action = 0, "present"
        if not path.is_file():
            part = download_path(url, folder)
            part.parent.mkdir(exist_ok=True)
            part = part.with_name(part.name + ".part")
            try:
                fetched = download(url, part, timeout, retries)
            except AcquireError as exc:
                raise AcquireError(f"{exc}{manual}") from exc
            if _looks_like_html(part):
                part.unlink()
                raise AcquireError(f"{url}: the server sent an HTML page, not the file (a sign-in or download-"
                                   f"confirmation page){manual}")
            os.replace(part, path)
            remove_if_empty(part.parent)
            action = "downloaded"
        digest = sha256_of(path)
        if expected:
            check_sha256(url, digest, expected, path)
            checked = "params"
        elif recorded:
            check_sha256(url, digest, recorded, path)
            checked = "record"
        else:
            checked = "recorded now"
            log.warning("%s: no sha256 given; recorded %s in %s (later runs verify the file against it; put "
                        "`sha256: %s` in the params file to pin it)", path, digest, folder / ".acquire.json", digest)
        if recorded != digest or action == "downloaded":
            manifest["sources"][url] = {
                "source": url, "url": url, "kind": "url", "action": action, "size": path.stat().st_size,
                "sha256": digest, "entries": [path.name], "time": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            write_json_atomic(folder / ".acquire.json", manifest)
    return FetchResult(path=path, action=action, sha256=digest, checked_against=checked, downloaded_bytes=fetched)
