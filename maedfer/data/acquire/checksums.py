"""sha256 of files: computing, validating an expected value, comparing."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from maedfer.data.acquire.errors import AcquireError, ChecksumError

CHUNK = 1 << 20  # bytes read (or downloaded) at a time


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def normalise_sha256(sha256: str | None, source: str) -> str | None:
    """``sha256`` in lower case, None when not given; :class:`AcquireError` unless it is 64 hex digits."""
    if sha256 is None or not sha256.strip():
        return None
    value = sha256.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise AcquireError(f"{source}: sha256 {sha256!r} is not 64 hexadecimal digits")
    return value


def check_sha256(source: str, digest: str, expected: str | None, path: Path) -> None:
    """Raise :class:`ChecksumError` when ``expected`` is given and differs from ``digest``."""
    if expected and digest != expected:
        raise ChecksumError(
            f"{source}: sha256 mismatch: expected {expected}, got {digest} (file kept at {path}; delete it to "
            f"download again, or correct the expected value)"
        )


# ------------------------------------------------------------------ md5 or sha256 ("algo:hex")
_HEX_LENGTHS = {"md5": 32, "sha256": 64}


def digests_of(path: str | os.PathLike) -> dict[str, str]:
    """Hex md5 and sha256 of the file at ``path``, read once."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            md5.update(chunk)
            sha.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha.hexdigest()}


def parse_checksum(text: str | None, source: str) -> tuple[str, str] | None:
    """``(algo, hex)`` of ``"md5:HEX"`` / ``"sha256:HEX"`` (a bare 32 / 64 hex digits: md5 / sha256); None if empty."""
    if text is None or not str(text).strip():
        return None
    value = str(text).strip().lower()
    algo, _, digest = value.rpartition(":")
    if not algo:
        algo = next((a for a, n in _HEX_LENGTHS.items() if n == len(digest)), "")
    bad_digit = any(c not in "0123456789abcdef" for c in digest)
    if algo not in _HEX_LENGTHS or len(digest) != _HEX_LENGTHS[algo] or bad_digit:
        raise AcquireError(f"{source}: checksum {text!r} is not md5:<32 hex digits> or sha256:<64 hex digits>")
    return algo, digest
