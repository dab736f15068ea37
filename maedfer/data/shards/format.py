"""The shard and index formats: file names, Arrow schemas, footer keys, errors and clip checksums."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from maedfer.data.records import INDEX_COLUMNS, SHARD_COLUMNS

DEFAULT_SHARD_BYTES: int = 256 * 2**20
SHARD_DIR = "shards"
INDEX_NAME = "index.parquet"
SHARD_PATTERN = re.compile(r"^shard-(\d{5,})\.parquet$")
# Footer keys of a shard file.
META_CLIPS = b"maedfer.clips"
META_SETTINGS = b"maedfer.settings"
META_FORMAT = b"maedfer.shard_format"
SHARD_FORMAT = "1"

# List children are named "element", as Parquet stores them, so that tables read back compare equal.
BYTES_LIST = pa.list_(pa.field("element", pa.binary()))
FOLDS_LIST = pa.list_(pa.field("element", pa.int8()))

SHARD_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("frames", BYTES_LIST, nullable=False),
        pa.field("num_frames", pa.int32(), nullable=False),
    ]
)
assert tuple(SHARD_SCHEMA.names) == SHARD_COLUMNS

INDEX_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("label", pa.int16(), nullable=False),
        pa.field("label_name", pa.string(), nullable=False),
        pa.field("subject", pa.string(), nullable=True),
        pa.field("train_folds", FOLDS_LIST, nullable=False),
        pa.field("test_folds", FOLDS_LIST, nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),
        pa.field("num_frames", pa.int32(), nullable=False),
        pa.field("height", pa.int16(), nullable=False),
        pa.field("width", pa.int16(), nullable=False),
        pa.field("fps", pa.float32(), nullable=False),
        pa.field("checksum", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
    ]
)
assert tuple(INDEX_SCHEMA.names) == INDEX_COLUMNS


class ShardError(ValueError):
    """A shard or index file is missing, unreadable or does not match its checksums."""


class ShardChecksumError(ShardError):
    """A clip's bytes no longer match the checksum recorded at ingest time."""


def clip_checksum(frames: Iterable[bytes]) -> str:
    """sha256 hex of the JPEG bytes concatenated in frame order."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(frame)
    return digest.hexdigest()


def shard_name(number: int) -> str:
    """File name of shard ``number`` (shard-00000.parquet, ...)."""
    return f"shard-{number:05d}.parquet"


@dataclass(frozen=True)
class StoredClip:
    """Where and how one clip is stored (one entry of a shard footer; most index columns)."""

    clip_id: str
    shard: str  # relative to the index's folder, e.g. "shards/shard-00000.parquet"
    row: int
    num_frames: int
    height: int
    width: int
    fps: float
    checksum: str
    key: str  # fingerprint of the source + ingest settings that produced these bytes


def list_shards(out: str | os.PathLike) -> list[Path]:
    """Finished shard files of an ingested dataset, in order."""
    folder = Path(out) / SHARD_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if SHARD_PATTERN.match(p.name))
