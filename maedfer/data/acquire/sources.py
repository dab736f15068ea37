"""A dataset's ``source`` (params file ``datasets.<name>.source``) resolved into items and brought into its root.

Forms of ``source`` (exactly one of ``folder``, ``files``, ``catalogue``)::

    source: {folder: /data/DFEW}                                # its entries are linked into the root
    source: {files: [a.zip, {path: b.tar.gz, md5: ...}]}        # local archives (or files), extracted
    source: {files: [{url: https://.../x.zip, sha256: ...}]}    # downloads, verified, extracted
    source: {files: [{parts: [u/x_partaa, u/x_partab], name: x.zip, md5: ...}]}   # byte-split parts, joined
    source: {catalogue: ravdess}                                # the built-in catalogue (catalogue.py)
    source: {catalogue: ravdess, mirror: http://127.0.0.1:8000/, only: [...], checksums: {name: md5:...}}
    source: {catalogue: dfew, inbox: data/archives/dfew}        # gated: the owners' archives, put there by you

An item is satisfied when the root's manifest (``.acquire.json``) records it, its extracted entries are
there and its recorded checksum agrees with the expected one: nothing is done then. A checksum that differs
from the recorded one (the params file changed, or a re-download differs) is a one-line error naming the file.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maedfer.data.acquire.catalogue import CATALOGUE, CatalogueEntry, catalogue_entry
from maedfer.data.acquire.checksums import parse_checksum
from maedfer.data.acquire.download import url_file_name
from maedfer.data.acquire.errors import AcquireError
from maedfer.data.acquire.tools import group_files

log = logging.getLogger(__name__)

SOURCE_KINDS = ("folder", "files", "catalogue")
DEFAULT_INBOX = "data/archives/{name}"


@dataclass(frozen=True)
class Item:
    """One thing to bring into the root: a folder, a file (local or URL), or the parts of one file."""

    key: str  # its manifest key (the file name; a folder's resolved path)
    name: str  # the (joined) file's name
    urls: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    folder: str | None = None
    checksum: tuple[str, str] | None = None  # (algo, hex) expected; None: recorded on first use
    join: bool = False  # the urls / paths are byte-split parts of `name`
    into: str = ""  # a plain file goes to root/into/
    missing_ok: bool = False  # a 404 lists the file as absent upstream instead of failing


@dataclass(frozen=True)
class Resolved:
    """A source spec resolved: its items, the credentials' env var names (if any) and the keep flag."""

    items: tuple[Item, ...]
    keep: bool = False
    credentials: tuple[str, str] | None = None  # env var names, read when a download needs them
    entry: CatalogueEntry | None = None
    where: str = ""  # "params.yaml: datasets.ravdess.source", for messages
    notes: tuple[str, ...] = field(default_factory=tuple)


def _is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def _checksum(spec: Mapping[str, Any], where: str) -> tuple[str, str] | None:
    given = [(a, spec[a]) for a in ("md5", "sha256") if spec.get(a)]
    if len(given) > 1:
        raise ValueError(f"{where}: give md5 or sha256, not both")
    if spec.get("checksum"):
        given.append(("", spec["checksum"]))
    if not given:
        return None
    algo, value = given[0]
    return parse_checksum(f"{algo}:{value}" if algo else value, where)


def _file_item(spec: str | Mapping[str, Any], where: str) -> Item:
    if isinstance(spec, str):
        spec = {"url": spec} if _is_url(spec) else {"path": spec}
    check = _checksum(spec, where)
    into = str(spec.get("into", ""))
    if "parts" in spec:
        parts = [str(p) for p in spec["parts"]]
        if not parts or not spec.get("name"):
            raise ValueError(f"{where}: `parts` needs a list of URLs or paths and the joined file's `name`")
        urls = all(_is_url(p) for p in parts)
        if not urls and any(_is_url(p) for p in parts):
            raise ValueError(f"{where}: `parts` are all URLs or all local paths, not a mix")
        return Item(key=spec["name"], name=spec["name"], urls=tuple(parts) if urls else (),
                    paths=() if urls else tuple(parts), checksum=check, join=True, into=into)
    if "url" in spec:
        name = spec.get("name") or url_file_name(spec["url"])
        return Item(key=name, name=name, urls=(spec["url"],), checksum=check, into=into)
    if "path" in spec:
        path = str(spec["path"])
        name = spec.get("name") or Path(path).name
        return Item(key=name, name=name, paths=(path,), checksum=check, into=into)
    raise ValueError(f"{where}: a file is a URL, a path, or a mapping with url, path or parts")


def _catalogue_items(spec: Mapping[str, Any], entry: CatalogueEntry, where: str) -> list[Item]:
    pins = {name: parse_checksum(value, f"{where}.checksums.{name}")
            for name, value in (spec.get("checksums") or {}).items()}
    files = list(entry.files)
    if only := spec.get("only"):
        known = {f.name for f in files}
        if unknown := [n for n in only if n not in known]:
            raise ValueError(f"{where}.only: {unknown[0]!r} is not a file of the catalogue entry {entry.name!r}")
        files = [f for f in files if f.name in set(only)]
    if unknown := sorted(set(pins) - {f.name for f in files}):
        raise ValueError(f"{where}.checksums: {unknown[0]!r} is not a file of this source")
    mirror = spec.get("mirror")
    items = []
    for f in files:
        urls = f.urls if not mirror else tuple(mirror.rstrip("/") + "/" + u.rsplit("/", 1)[1] for u in f.urls)
        check = pins.get(f.name) or (parse_checksum(f.checksum, f.name) if f.checksum else None)
        items.append(Item(key=f.name, name=f.name, urls=urls, checksum=check, join=len(urls) > 1, into=f.into,
                          missing_ok=entry.missing_ok))
    return items


def _inbox_items(inbox: Path, entry: CatalogueEntry, pins: Mapping[str, Any], where: str) -> list[Item]:
    """Items of the owners' files the user put in ``inbox`` (grouped: parts joined, volumes together)."""
    files = [p for p in inbox.iterdir() if p.is_file() and not p.name.startswith(".")] if inbox.is_dir() else []
    items = []
    for name, paths, join in group_files(files):
        check = parse_checksum(pins[name], f"{where}.checksums.{name}") if name in pins else None
        items.append(Item(key=name, name=name, paths=tuple(str(p) for p in paths), checksum=check, join=join))
    return items


def resolve_source(spec: Mapping[str, Any], dataset: str, where: str) -> Resolved:
    """The items of ``spec`` (a ``source`` mapping); ``ValueError`` naming ``where`` for a bad spec."""
    kinds = [k for k in SOURCE_KINDS if k in spec]
    if len(kinds) != 1:
        raise ValueError(f"{where}: give exactly one of {', '.join(SOURCE_KINDS)} (found {', '.join(kinds) or 'none'})")
    keep = bool(spec.get("keep", False))
    if kinds[0] == "folder":
        folder = str(Path(spec["folder"]).expanduser())
        return Resolved((Item(key=str(Path(folder).resolve()), name=Path(folder).name, folder=folder),), keep,
                        where=where)
    if kinds[0] == "files":
        files = spec["files"]
        if not files:
            raise ValueError(f"{where}.files: empty; list at least one URL or path")
        return Resolved(tuple(_file_item(f, f"{where}.files[{i}]") for i, f in enumerate(files)), keep, where=where)
    entry = catalogue_entry(spec["catalogue"], f"{where}.catalogue")
    if entry.access == "request":
        inbox = Path(spec.get("inbox") or DEFAULT_INBOX.format(name=entry.name))
        items = _inbox_items(inbox, entry, spec.get("checksums") or {}, where)
        if not items:
            raise AcquireError(
                f"{inbox}: no archives of {entry.title} found; {entry.request}, then put the archives they send, as "
                f"sent (zip, split zip .z01..., .zip.001..., 7z/.7z.001..., rar/.partN.rar or tar), in {inbox}/ and "
                f"run again (unpacked they must give {entry.expect})")
        return Resolved(tuple(items), keep, entry=entry, where=where, notes=entry.notes)
    items = _catalogue_items(spec, entry, where)
    if entry.access == "credentials":
        inbox = Path(spec.get("inbox") or DEFAULT_INBOX.format(name=entry.name))
        local = {name: paths for name, paths, _ in group_files(list(inbox.iterdir()))} if inbox.is_dir() else {}
        items = [Item(key=i.key, name=i.name, paths=tuple(str(inbox / url_file_name(u)) for u in i.urls),
                      checksum=i.checksum, join=i.join)
                 if i.name in local and len(local[i.name]) == len(i.urls) else i for i in items]
    return Resolved(tuple(items), keep, credentials=entry.credentials, entry=entry, where=where, notes=entry.notes)


def auth_headers(resolved: Resolved, inbox_hint: str) -> dict[str, str]:
    """The Authorization header built from the credential env vars (an :class:`AcquireError` naming them if unset).

    The header is kept in memory only: never logged, never written to the manifest, the marker or any file.
    """
    if resolved.credentials is None:
        return {}
    user_var, password_var = resolved.credentials
    user, password = os.environ.get(user_var), os.environ.get(password_var)
    if not user or not password:
        entry = resolved.entry
        raise AcquireError(
            f"{resolved.where}: {entry.title if entry else 'this source'} needs the owners' credentials: set "
            f"{user_var} and {password_var} in the environment ({entry.request if entry else ''}), or put the "
            f"parts you downloaded in {inbox_hint}/")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def unmet_source(spec: Mapping[str, Any], root: str | os.PathLike, dataset: str) -> str | None:
    """One line when a gated catalogue source cannot be satisfied now (checked before a run starts), else None.

    Satisfied or possibly satisfied: a public source, a root already acquired or filled by hand, files in the
    inbox, or (VoxCeleb2) the credential variables set.
    """
    entry = CATALOGUE.get(spec.get("catalogue", ""))
    if entry is None or entry.access == "public":
        return None
    root = Path(root)
    if root.is_dir() and any(not p.name.startswith(".acquire.lock") for p in root.iterdir()):
        return None
    inbox = Path(spec.get("inbox") or DEFAULT_INBOX.format(name=entry.name))
    if inbox.is_dir() and any(p.is_file() and not p.name.startswith(".") for p in inbox.iterdir()):
        return None
    if entry.credentials and all(os.environ.get(v) for v in entry.credentials):
        return None
    how = (f"set {' and '.join(entry.credentials)} in the environment, or put its parts in {inbox}/"
           if entry.credentials else f"put the archives they send, as sent, in {inbox}/")
    return (f"{root}: {entry.title} for {dataset!r} is not there yet: {entry.request}, then {how} "
            f"(or fill {root} in the owners' layout: {entry.expect})")
