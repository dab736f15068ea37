"""HTTP(S) downloads with the standard library, resumed with Range requests after an interruption."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import posixpath
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from maedfer.data.acquire.checksums import CHUNK
from maedfer.data.acquire.errors import AcquireError, NotFoundError

log = logging.getLogger(__name__)

DOWNLOADS_DIR = ".downloads"
_USER_AGENT = "maedfer-acquire/1"


def download_path(url: str, dest: str | os.PathLike) -> Path:
    """Where a download of ``url`` into ``dest`` is kept (``<that>.part`` while incomplete)."""
    # the URL's hash keeps two URLs with the same file name apart
    return Path(dest) / DOWNLOADS_DIR / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{url_file_name(url)}"


def url_file_name(url: str) -> str:
    """The file name a download of ``url`` is saved under."""
    name = urllib.parse.unquote(posixpath.basename(urllib.parse.urlparse(url).path)).strip()
    name = name.replace("\\", "_").lstrip(".")
    return name or "download"


def download(url: str, part: Path, timeout: float, retries: int, headers: dict[str, str] | None = None) -> int:
    """Download ``url`` into ``part`` (resuming what is there); returns the bytes fetched now.

    ``headers`` are added to every request (e.g. a credential's Authorization header; never logged).
    """
    fetched, attempt = 0, 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        try:
            got, complete = _download_once(url, part, have, timeout, headers)
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
            kind = NotFoundError if exc.code == 404 else AcquireError
            raise kind(f"{url}: HTTP {exc.code} {exc.reason}; check the URL (and your access to it)") from exc
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


def _download_once(url: str, part: Path, have: int, timeout: float,
                   extra: dict[str, str] | None = None) -> tuple[int, bool]:
    """One request; returns (bytes written, whether the file is complete)."""
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity", **(extra or {})}
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
            tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=url_file_name(url), disable=None) as bar,
        ):
            while chunk := response.read(CHUNK):
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
