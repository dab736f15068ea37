"""Reading shards and indexes back, and verifying them against their checksums."""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from maedfer.data.records import INDEX_COLUMNS
from maedfer.data.shards.format import (
    META_CLIPS,
    META_SETTINGS,
    SHARD_DIR,
    ShardChecksumError,
    ShardError,
    StoredClip,
    clip_checksum,
)

log = logging.getLogger(__name__)


def read_index(index_path: str | os.PathLike) -> pa.Table:
    """Read a dataset index; checks that its columns are exactly ``INDEX_COLUMNS``."""
    index_path = Path(index_path)
    if not index_path.is_file():
        raise FileNotFoundError(
            f"{index_path}: no index; run "
            f"`python -m pipeline.ingest --dataset NAME --root ROOT --out {index_path.parent}`"
        )
    try:
        table = pq.read_table(index_path)
    except (pa.ArrowException, OSError) as exc:
        raise ShardError(f"{index_path}: unreadable index ({exc}); delete it and re-run the ingest stage") from exc
    if tuple(table.column_names) != INDEX_COLUMNS:
        raise ShardError(
            f"{index_path}: columns {table.column_names} differ from INDEX_COLUMNS {list(INDEX_COLUMNS)}; "
            "re-run the ingest stage with this version of maedfer"
        )
    return table


def index_metadata(table: pa.Table) -> dict[str, str]:
    """The ``maedfer.*`` key-value metadata of an index table, keys without the prefix."""
    meta = table.schema.metadata or {}
    return {k.decode()[len("maedfer.") :]: v.decode() for k, v in meta.items() if k.startswith(b"maedfer.")}


@functools.lru_cache(maxsize=256)
def _footer(path: str, size: int, mtime_ns: int) -> pq.FileMetaData:
    return pq.read_metadata(path)


def _open_shard(shard_path: Path) -> pq.ParquetFile:
    """Open a shard, reusing its parsed footer (cached per file version; safe across fork)."""
    try:
        stat = shard_path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{shard_path}: shard missing; re-run the ingest stage for this dataset") from None
    try:
        meta = _footer(str(shard_path), stat.st_size, stat.st_mtime_ns)
        return pq.ParquetFile(shard_path, metadata=meta)
    except (pa.ArrowException, OSError) as exc:
        raise ShardError(f"{shard_path}: unreadable shard ({exc}); delete it and re-run the ingest stage") from exc


def _read_row(shard_path: Path, row: int) -> tuple[str, list[bytes]]:
    pf = _open_shard(shard_path)
    if not 0 <= row < pf.num_row_groups:
        raise ShardError(f"{shard_path}: row {row} out of range (shard has {pf.num_row_groups} clips); stale index?")
    try:
        group = pf.read_row_group(row, columns=["clip_id", "frames"])
    except (pa.ArrowException, OSError) as exc:
        raise ShardError(f"{shard_path}: row {row} unreadable ({exc}); delete the shard and re-run ingest") from exc
    clip_id = group.column("clip_id")[0].as_py()
    frames = group.column("frames")[0].values.to_pylist()
    return clip_id, frames


def read_clip_frames(
    shard_path: str | os.PathLike,
    row: int,
    frame_indices: Sequence[int] | None = None,
    expected_checksum: str | None = None,
) -> list[bytes]:
    """JPEG bytes of frames ``frame_indices`` (all frames if None) of the clip in row group ``row``.

    Reads that clip's row group only. With ``expected_checksum`` (the index's ``checksum``)
    the whole clip is verified first and a mismatch raises :class:`ShardChecksumError`.
    """
    shard_path = Path(shard_path)
    clip_id, frames = _read_row(shard_path, int(row))
    if expected_checksum is not None and clip_checksum(frames) != expected_checksum:
        raise ShardChecksumError(
            f"{shard_path}: clip {clip_id!r} (row {row}) does not match its checksum; the shard is corrupted: "
            "delete it and re-run the ingest stage"
        )
    if frame_indices is None:
        return frames
    return pick_frames(shard_path, clip_id, frames, frame_indices)


def pick_frames(shard_path: str | os.PathLike, clip_id: str, frames: list[bytes],
                frame_indices: Sequence[int]) -> list[bytes]:
    """``frames[i]`` for each of ``frame_indices``; an index past the clip's end names the shard and clip."""
    try:
        return [frames[int(i)] for i in frame_indices]
    except IndexError:
        raise IndexError(
            f"{shard_path}: clip {clip_id!r} has {len(frames)} frames, asked for {list(frame_indices)}"
        ) from None


def damaged_rows(shard_path: str | os.PathLike, clips: Sequence[StoredClip]) -> set[int]:
    """The rows of ``clips`` (a shard's footer entries) whose bytes are unreadable or differ from their checksum."""
    shard_path = Path(shard_path)
    bad = set()
    for clip in clips:
        try:
            stored_id, frames = _read_row(shard_path, clip.row)
        except ShardError:
            bad.add(clip.row)
            continue
        if stored_id != clip.clip_id or clip_checksum(frames) != clip.checksum:
            bad.add(clip.row)
    return bad


def read_shard_clips(shard_path: str | os.PathLike) -> tuple[str, list[StoredClip]]:
    """The settings fingerprint and per-clip entries recorded in a finished shard's footer."""
    shard_path = Path(shard_path)
    meta = _open_shard(shard_path).metadata.metadata or {}
    if META_CLIPS not in meta or META_SETTINGS not in meta:
        raise ShardError(f"{shard_path}: not a maedfer shard (no clip metadata in its footer); delete it")
    rel = f"{SHARD_DIR}/{shard_path.name}"
    clips = [StoredClip(shard=rel, **entry) for entry in json.loads(meta[META_CLIPS])]
    return meta[META_SETTINGS].decode(), clips


def verify_shard(shard_path: str | os.PathLike, expected: Mapping[int, tuple[str, str]] | None = None) -> int:
    """Check every clip of a shard against its checksum; returns the number of clips checked.

    ``expected`` maps row -> (clip_id, checksum) (e.g. from the index); by default the
    checksums recorded in the shard's own footer are used. Raises :class:`ShardChecksumError`
    naming the shard and the first bad clip.
    """
    shard_path = Path(shard_path)
    if expected is None:
        expected = {c.row: (c.clip_id, c.checksum) for c in read_shard_clips(shard_path)[1]}
    for row, (clip_id, checksum) in sorted(expected.items()):
        try:
            stored_id, frames = _read_row(shard_path, row)
        except ShardError as exc:
            raise ShardChecksumError(f"{exc} (clip {clip_id!r})") from exc
        if stored_id != clip_id or clip_checksum(frames) != checksum:
            raise ShardChecksumError(
                f"{shard_path}: clip {clip_id!r} (row {row}) does not match its checksum; the shard is corrupted: "
                "delete it and re-run the ingest stage"
            )
    return len(expected)


def verify_index(index_path: str | os.PathLike) -> int:
    """Verify every clip listed in an index against its checksum; returns the number of clips."""
    index_path = Path(index_path)
    table = read_index(index_path)
    per_shard: dict[str, dict[int, tuple[str, str]]] = {}
    for clip_id, shard, row, checksum in zip(
        table.column("clip_id").to_pylist(),
        table.column("shard").to_pylist(),
        table.column("row").to_pylist(),
        table.column("checksum").to_pylist(),
        strict=True,
    ):
        per_shard.setdefault(shard, {})[row] = (clip_id, checksum)
    return sum(verify_shard(index_path.parent / shard, rows) for shard, rows in sorted(per_shard.items()))
