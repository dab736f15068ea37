"""Archives as owners send them: split parts joined, multi-volume 7z / rar / split zip through system tools.

* Byte-split parts (``vox2_dev_mp4_partaa`` ... ``partai``, ``x.zip.001`` ...) are one file cut in pieces:
  :func:`join_parts` concatenates them, in order, into the whole archive (whose checksum the owners publish).
* Multi-volume archives (``x.7z.001``, ``x.part1.rar``, ``x.zip`` + ``x.z01``) and any 7z or rar archive are
  extracted by the system tool (``7z``, or ``unrar`` for rar when there is no ``7z``); a missing tool is a
  one-line error naming it and how to install it. Extraction goes to a temporary folder, every extracted
  path is checked to stay inside it (links included) before the entries are moved into place.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

from maedfer.data.acquire.archives import ARCHIVE_SUFFIXES, extract_into
from maedfer.data.acquire.checksums import CHUNK
from maedfer.data.acquire.errors import AcquireError, UnsafeArchiveError

log = logging.getLogger(__name__)

TOOL_HINT = {
    "7z": "install p7zip (apt install p7zip-full, brew install p7zip or conda install -c conda-forge p7zip)",
    "unrar": "install unrar (apt install unrar) or p7zip (apt install p7zip-full)",
}
_SEVEN_Z = re.compile(r"\.7z(\.\d{3})?$", re.IGNORECASE)
_RAR = re.compile(r"(\.part0*1)?\.rar$|\.r\d\d$", re.IGNORECASE)
_ZIP_VOLUME = re.compile(r"\.z\d\d$", re.IGNORECASE)
_RAR_LATER = re.compile(r"\.part0*([2-9]|\d{2,})\.rar$|\.r\d\d$", re.IGNORECASE)
_SPLIT_NUMBER = re.compile(r"^(?P<base>.+)\.(?P<n>\d{3})$")  # x.zip.001 (byte split; not 7z's x.7z.001)
_SPLIT_LETTERS = re.compile(r"^(?P<base>.+_part)(?P<n>[a-z]{2})$")  # vox2_dev_mp4_partaa


def join_parts(parts: list[Path], out: Path) -> Path:
    """Concatenate ``parts`` in order into ``out`` (through ``out.part``, renamed when complete)."""
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise AcquireError(f"{missing[0]}: split part missing ({len(missing)} of {len(parts)} absent); "
                           "put every part in the same folder")
    tmp = out.with_name(out.name + ".part")
    log.info("joining %d parts into %s", len(parts), out)
    with open(tmp, "wb") as f:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(CHUNK):
                    f.write(chunk)
    os.replace(tmp, out)
    return out


def needs_tool(path: Path) -> str | None:
    """The system tool an archive needs (``7z`` / ``unrar``), None for zip and tar (read in Python)."""
    name = path.name
    if _SEVEN_Z.search(name):
        return "7z"
    if _RAR.search(name):
        return "7z" if shutil.which("7z") else "unrar"
    if name.lower().endswith(".zip") and any(path.parent.glob(f"{glob_escape(path.stem)}.z[0-9][0-9]")):
        return "7z"  # a split zip (x.zip + x.z01 ...): Python's zipfile cannot read it
    return None


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters escaped."""
    return re.sub(r"([*?\[\]])", r"[\1]", text)


def is_archive_name(name: str) -> bool:
    """Whether a file name is an archive (or the first volume of one) that acquisition extracts."""
    lower = name.lower()
    return lower.endswith(ARCHIVE_SUFFIXES) or bool(_SEVEN_Z.search(name) or _RAR.search(name))


def group_files(files: list[Path]) -> list[tuple[str, list[Path], bool]]:
    """Group a folder's files into items: ``(name, files, join)``.

    Byte-split parts (``x.zip.001``..., ``x_partaa``...) become one item joined into ``x.zip`` / ``x``
    (``join`` True); later volumes of 7z / rar / split-zip sets go with their first volume, which the
    tool opens; every other file is an item of its own.
    """
    files = sorted(files, key=lambda p: p.name)
    items: list[tuple[str, list[Path], bool]] = []
    splits: dict[str, list[Path]] = {}
    for path in files:
        name = path.name
        if _SEVEN_Z.search(name) and not name.lower().endswith((".7z", ".7z.001")):
            continue  # a later 7z volume
        if _RAR_LATER.search(name) or _ZIP_VOLUME.search(name):
            continue  # a later rar volume, or a split zip's .zNN volume (7z opens the .zip)
        number = _SPLIT_NUMBER.match(name)
        letters = _SPLIT_LETTERS.match(name)
        if number and not name.lower().endswith(".7z.001"):
            splits.setdefault(number.group("base"), []).append(path)
        elif letters:
            splits.setdefault(letters.group("base").removesuffix("_part"), []).append(path)
        else:
            items.append((name, [path], False))
    for base, parts in splits.items():
        items.append((base if is_archive_name(base) else f"{base}.zip", sorted(parts, key=lambda p: p.name), True))
    return sorted(items)


def extract_any(archive: Path, dest: Path) -> tuple[str, ...]:
    """Extract ``archive`` into ``dest`` (zip / tar in Python, 7z / rar / split zip with the system tool)."""
    tool = needs_tool(archive)
    if tool is None:
        return extract_into(archive, dest)
    exe = shutil.which(tool)
    if exe is None:
        raise AcquireError(f"{archive}: extracting it needs the `{tool}` command, which is not installed; "
                           f"{TOOL_HINT[tool]} and run again")

    def run_tool(archive: Path, tmp: Path) -> None:
        cmd = ([exe, "x", "-y", f"-o{tmp}", str(archive)] if tool == "7z"
               else [exe, "x", "-o+", "-idq", str(archive), f"{tmp}{os.sep}"])
        log.info("extracting %s with %s", archive, tool)
        done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no message"]
            raise AcquireError(f"{archive}: {tool} failed (exit {done.returncode}: {last[0]}); check the archive "
                               "and that every volume is beside it")
        _check_inside(archive, tmp)

    return extract_into(archive, dest, run_tool)


def _check_inside(archive: Path, root: Path) -> None:
    """Refuse an extraction in which a path or a link leads outside ``root``."""
    top = os.path.realpath(root)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            real = os.path.realpath(path)
            if real != top and not real.startswith(top + os.sep):
                rel = os.path.relpath(path, root)
                raise UnsafeArchiveError(f"{archive}: refusing member {rel!r}: it leads outside the target folder")
