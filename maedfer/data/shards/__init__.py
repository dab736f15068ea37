"""Parquet shards of JPEG-encoded clips, the per-dataset index, and their integrity checks.

Layout of one ingested dataset (``out``)::

    out/index.parquet              one row per clip, columns INDEX_COLUMNS (records.py)
    out/shards/shard-00000.parquet clips, ONE ROW GROUP PER CLIP, columns SHARD_COLUMNS
    out/ingest_state.json          settings + fingerprints of the last complete ingest
    out/report.json                what the last ingest did

Every shard is written under a temporary name and renamed when it is closed; the footer
of a finished shard carries, as key-value metadata, the settings fingerprint it was written
with and one entry per clip (row, frame count, size, fps, sha256 checksum, source key). A
re-run therefore recovers every finished shard from its own footer, without a side file that
could disagree with it: clips already stored with the same key are reused, not re-decoded.

Checksum of a clip: sha256 of its JPEG bytes concatenated in frame order (``clip_checksum``).

Modules: :mod:`~maedfer.data.shards.format` (names, schemas, checksums),
:mod:`~maedfer.data.shards.reader` (reading and verifying), :mod:`~maedfer.data.shards.writer` (writing).
"""

from maedfer.data.shards.format import (
    DEFAULT_SHARD_BYTES,
    INDEX_NAME,
    INDEX_SCHEMA,
    SHARD_DIR,
    SHARD_FORMAT,
    SHARD_SCHEMA,
    ShardChecksumError,
    ShardError,
    StoredClip,
    clip_checksum,
    list_shards,
    shard_name,
)
from maedfer.data.shards.reader import (
    index_metadata,
    pick_frames,
    read_clip_frames,
    read_index,
    read_shard_clips,
    verify_index,
    verify_shard,
)
from maedfer.data.shards.writer import ShardWriter, build_index_table, write_index

__all__ = [
    "DEFAULT_SHARD_BYTES",
    "INDEX_NAME",
    "INDEX_SCHEMA",
    "SHARD_DIR",
    "SHARD_FORMAT",
    "SHARD_SCHEMA",
    "ShardChecksumError",
    "ShardError",
    "ShardWriter",
    "StoredClip",
    "build_index_table",
    "clip_checksum",
    "index_metadata",
    "list_shards",
    "pick_frames",
    "read_clip_frames",
    "read_index",
    "read_shard_clips",
    "shard_name",
    "verify_index",
    "verify_shard",
    "write_index",
]
