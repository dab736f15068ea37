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
