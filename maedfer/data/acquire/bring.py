"""Bring a resolved source's items into a dataset root: download or join, verify, extract, record.

Per item: a satisfied item (recorded in ``<root>/.acquire.json``, entries present, recorded checksum equal
to the expected one) is left alone. Otherwise its file is obtained (downloaded with resume into
``<root>/.downloads/``; byte-split parts joined there; a local file used in place), verified (against the
expected md5/sha256; else against the checksum an earlier download recorded; else recorded now, with a
warning that says so), extracted (or placed), and recorded. Downloaded and joined files are removed once
extracted unless ``keep``.

:func:`write_marker` writes ``<root>/.acquired.json``: the DAG's output of the acquire stage. Its bytes depend
only on the source and the checksums, and it is not rewritten when unchanged, so a satisfied source changes
nothing that DVC or Snakemake look at.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from maedfer.data.acquire.checksums import digests_of
from maedfer.data.acquire.download import DOWNLOADS_DIR, download, download_path
from maedfer.data.acquire.errors import AcquireError, ChecksumError, NotFoundError
from maedfer.data.acquire.sources import Item, Resolved, auth_headers
from maedfer.data.acquire.store import (
    MANIFEST_NAME,
    locked,
    place_file,
    place_folder,
    read_manifest,
    remove_if_empty,
    remove_stale_temporaries,
)
from maedfer.data.acquire.tools import extract_any, is_archive_name, join_parts
from maedfer.io_utils import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

MARKER_NAME = ".acquired.json"


@dataclass(frozen=True)
class ItemResult:
    """What happened to one item: ``present``, ``extracted``, ``placed``, ``linked`` or ``absent upstream``."""

    name: str
    action: str
    md5: str | None = None
    sha256: str | None = None
    checked: str = ""  # "params" | "record" | "recorded now" | ""
    downloaded_bytes: int = 0


def bring(resolved: Resolved, dest: str | os.PathLike, *, timeout: float = 60.0, retries: int = 3,
          inbox_hint: str = "the inbox folder") -> list[ItemResult]:
    """Bring every item of ``resolved`` into ``dest`` (see the module docstring)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    results = []
    with locked(dest):
        remove_stale_temporaries(dest)
        manifest = read_manifest(dest)
        headers: dict[str, str] | None = None
        for item in resolved.items:
            done = manifest["sources"].get(item.key)
            if done is not None and all(os.path.lexists(dest / e) for e in done.get("entries", [])):
                _check_recorded(item, done, dest)
                action = "absent upstream" if done.get("absent") else "present"
                results.append(ItemResult(item.name, action, done.get("md5"), done.get("sha256"), "record"))
                continue
            if item.urls and headers is None:
                headers = auth_headers(resolved, inbox_hint)
            result, entry = _bring_one(item, dest, done, headers or {}, resolved.keep, timeout, retries)
            results.append(result)
            if entry is not None:
                manifest["sources"][item.key] = entry
                write_json_atomic(dest / MANIFEST_NAME, manifest)
        remove_if_empty(dest / DOWNLOADS_DIR)
    return results


def _check_recorded(item: Item, done: dict, dest: Path) -> None:
    if item.checksum is None:
        return
    algo, expected = item.checksum
    recorded = done.get(algo)
    if recorded and recorded != expected:
        raise ChecksumError(f"{item.name}: {algo} {recorded} recorded in {dest / MANIFEST_NAME} differs from the "
                            f"expected {expected}; correct the checksum in the params file, or delete the dataset "
                            "folder to acquire it again")


def _bring_one(item: Item, dest: Path, done: dict | None, headers: dict[str, str], keep: bool, timeout: float,
               retries: int) -> tuple[ItemResult, dict | None]:
    if item.folder is not None:
        folder = Path(item.folder)
        if not folder.is_dir():
            raise AcquireError(f"{folder}: source folder not found; put the dataset there or correct `folder`")
        entries = place_folder(folder, dest, copy=False)
        return ItemResult(item.name, "linked"), _entry(item, item.folder, "folder", entries, {}, "")
    try:
        path, temporary, fetched = _obtain(item, dest, headers, timeout, retries)
    except NotFoundError:
        if not item.missing_ok:
            raise
        log.info("%s: not on the server (a name the owners' scheme allows but they do not ship); skipped", item.name)
        return ItemResult(item.name, "absent upstream"), {**_entry(item, " + ".join(item.urls), "url", (), {}, ""),
                                                          "absent": True}
    digests = digests_of(path)
    checked = _verify(item, digests, done, path)
    if is_archive_name(item.name) or is_archive_name(path.name):
        entries = extract_any(path, dest)
        action = "extracted"
        if temporary and not keep:
            path.unlink()
    else:
        target = dest / item.into if item.into else dest
        target.mkdir(parents=True, exist_ok=True)
        if temporary:
            final = target / item.name
            shutil.copy2(path, final) if keep else os.replace(path, final)
            action = "placed"
        else:
            place_file(path, target, copy=False)
            action = "linked"
        entries = (f"{item.into}/{item.name}" if item.into else item.name,)
    source = " + ".join(item.urls or item.paths)
    result = ItemResult(item.name, action, digests["md5"], digests["sha256"], checked, fetched)
    return result, _entry(item, source, "url" if item.urls else "file", entries, digests, checked)


def _entry(item: Item, source: str, kind: str, entries: tuple[str, ...], digests: dict, checked: str) -> dict:
    return {"source": source, "kind": kind, "name": item.name, **digests, "checked": checked,
            "entries": list(entries), "time": datetime.now(UTC).isoformat(timespec="seconds")}


def _obtain(item: Item, dest: Path, headers: dict[str, str], timeout: float, retries: int) -> tuple[Path, bool, int]:
    """(the file, whether it is a temporary copy to remove, bytes downloaded)."""
    downloads = dest / DOWNLOADS_DIR
    if item.urls:
        downloads.mkdir(exist_ok=True)
        fetched, parts = 0, []
        for url in item.urls:
            final = download_path(url, dest)
            if not final.is_file():
                part = final.with_name(final.name + ".part")
                fetched += download(url, part, timeout, retries, headers)
                os.replace(part, final)
            parts.append(final)
        if not item.join:
            return parts[0], True, fetched
        whole = join_parts(parts, downloads / item.name)
        for p in parts:
            p.unlink()
        return whole, True, fetched
    paths = [Path(p).expanduser() for p in item.paths]
    missing = next((p for p in paths if not p.is_file()), None)
    if missing is not None:
        raise AcquireError(f"{missing}: file not found; put it there or correct the source in the params file")
    if item.join:
        downloads.mkdir(exist_ok=True)
        return join_parts(paths, downloads / item.name), True, 0
    return paths[0], False, 0


def _verify(item: Item, digests: dict[str, str], done: dict | None, path: Path) -> str:
    if item.checksum is not None:
        algo, expected = item.checksum
        if digests[algo] != expected:
            raise ChecksumError(f"{item.name}: {algo} mismatch: expected {expected}, got {digests[algo]} ({path}); "
                                "delete it to download again, or correct the checksum in the params file")
        return "params"
    if done and done.get("sha256"):
        if done["sha256"] != digests["sha256"]:
            raise ChecksumError(f"{item.name}: sha256 {digests['sha256']} differs from {done['sha256']} recorded at "
                                f"the first download ({path}); the file changed upstream or is damaged")
        return "record"
    log.warning("%s: no published checksum; recorded md5 %s and sha256 %s (later downloads are verified against "
                "them; pin it with checksums: {%s: md5:%s})", item.name, digests["md5"], digests["sha256"],
                item.name, digests["md5"])
    return "recorded now"


def marker_text(dataset: str, results: list[ItemResult]) -> str:
    """The marker's JSON: the dataset and each item's name, checksums and state (no times, no credentials)."""
    items = [{"name": r.name, "md5": r.md5, "sha256": r.sha256} if r.action != "absent upstream"
             else {"name": r.name, "absent_upstream": True} for r in results]
    return json.dumps({"dataset": dataset, "items": items}, indent=1, sort_keys=True) + "\n"


def write_marker(dest: str | os.PathLike, dataset: str, results: list[ItemResult]) -> bool:
    """Write ``<dest>/.acquired.json`` unless it already holds the same bytes; returns whether it was written."""
    path = Path(dest) / MARKER_NAME
    text = marker_text(dataset, results)
    if path.is_file() and path.read_text() == text:
        return False
    write_text_atomic(path, text)
    return True
