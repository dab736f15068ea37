"""Writing clips into size-bounded shards (resuming finished ones) and writing the index."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from maedfer.data.records import INDEX_COLUMNS
from maedfer.data.shards.format import (
    BYTES_LIST,
    DEFAULT_SHARD_BYTES,
    INDEX_SCHEMA,
    META_CLIPS,
    META_FORMAT,
    META_SETTINGS,
    SHARD_DIR,
    SHARD_FORMAT,
    SHARD_PATTERN,
    SHARD_SCHEMA,
    ShardError,
    StoredClip,
    clip_checksum,
    shard_name,
)
from maedfer.data.shards.reader import damaged_rows, read_shard_clips
from maedfer.io_utils import atomic_path

log = logging.getLogger(__name__)


class ShardWriter:
    """Write clips into size-bounded shards under ``<out>/shards``, one row group per clip.

    On construction it recovers the finished shards already in ``<out>/shards``: those
    written with the same ``settings_key`` are kept (their clips are available through
    :meth:`lookup`), the others and any temporary leftovers of an interrupted run are
    removed. Every kept clip is checked against its checksum first: a damaged one (a flipped
    byte) is not offered for reuse, so a re-run writes exactly the damaged clips again (into a
    new shard; the intact clips of the old shard stay where they are). New shards are numbered
    after the kept ones.

    ``shard_bytes`` bounds the JPEG payload of a shard: a clip that would push the open shard
    past the bound goes to a new shard (a single clip larger than the bound gets its own).
    Use as a context manager: on an exception between clips the open shard is finished
    (its clips are complete), so a resumed run keeps them.
    """

    def __init__(self, out: str | os.PathLike, settings_key: str, shard_bytes: int = DEFAULT_SHARD_BYTES) -> None:
        if shard_bytes <= 0:
            raise ValueError(f"shard_bytes must be positive, got {shard_bytes}")
        self.out = Path(out)
        self.dir = self.out / SHARD_DIR
        self.settings_key = settings_key
        self.shard_bytes = int(shard_bytes)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.existing: dict[str, StoredClip] = {}
        self.kept_shards: list[str] = []
        self.written_shards: list[str] = []
        self._next_number = self._recover()
        self._stack: contextlib.ExitStack | None = None
        self._writer: pq.ParquetWriter | None = None
        self._name = ""
        self._clips: list[StoredClip] = []
        self._bytes = 0
        self._in_write = False

    def _recover(self) -> int:
        highest = -1
        for path in sorted(self.dir.iterdir()):
            if path.name.startswith(".shard-"):  # temporary file of an interrupted run
                log.info("removing unfinished shard %s", path)
                path.unlink()
                continue
            match = SHARD_PATTERN.match(path.name)
            if not match:
                continue
            try:
                key, clips = read_shard_clips(path)
            except ShardError as exc:
                log.warning("removing unreadable shard: %s", exc)
                path.unlink()
                continue
            if key != self.settings_key:
                log.info("removing %s: written with other ingest settings", path)
                path.unlink()
                continue
            highest = max(highest, int(match.group(1)))
            self.kept_shards.append(path.name)
            damaged = damaged_rows(path, clips)
            for clip in clips:  # later shards win if a clip was stored twice
                if clip.row in damaged:
                    log.warning("%s: clip %r (row %d) does not match its checksum; not reused (written again if "
                                "still listed)", path, clip.clip_id, clip.row)
                    continue
                self.existing[clip.clip_id] = clip
        if self.kept_shards:
            log.info("resuming: %d finished shards hold %d clips", len(self.kept_shards), len(self.existing))
        return highest + 1

    def lookup(self, clip_id: str, key: str) -> StoredClip | None:
        """The stored clip with this id if it was written from the same source key, else None."""
        clip = self.existing.get(clip_id)
        return clip if clip is not None and clip.key == key else None

    def add(
        self, clip_id: str, frames: Sequence[bytes], *, height: int, width: int, fps: float, key: str
    ) -> StoredClip:
        """Append one clip (its JPEG frames, in time order) as a new row group."""
        if not frames:
            raise ValueError(f"clip {clip_id!r}: no frames to write")
        size = sum(len(f) for f in frames)
        if self._writer is not None and self._bytes + size > self.shard_bytes:
            self._finish()
        if self._writer is None:
            self._open()
        assert self._writer is not None
        clip = StoredClip(
            clip_id=clip_id,
            shard=f"{SHARD_DIR}/{self._name}",
            row=len(self._clips),
            num_frames=len(frames),
            height=int(height),
            width=int(width),
            fps=float(fps),
            checksum=clip_checksum(frames),
            key=key,
        )
        table = pa.Table.from_arrays(
            [
                pa.array([clip_id], pa.string()),
                pa.array([list(frames)], BYTES_LIST),
                pa.array([len(frames)], pa.int32()),
            ],
            schema=SHARD_SCHEMA,
        )
        self._in_write = True
        self._writer.write_table(table, row_group_size=1)
        self._in_write = False
        self._clips.append(clip)
        self._bytes += size
        return clip

    def _open(self) -> None:
        self._name = shard_name(self._next_number)
        self._next_number += 1
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.dir / self._name))
        self._writer = pq.ParquetWriter(
            tmp,
            SHARD_SCHEMA,
            compression="none",  # JPEG bytes do not compress
            use_dictionary=["clip_id"],
            write_statistics=["clip_id", "num_frames"],
        )
        self._clips = []
        self._bytes = 0

    def _finish(self) -> None:
        assert self._writer is not None and self._stack is not None
        entries = [{k: v for k, v in asdict(c).items() if k != "shard"} for c in self._clips]
        self._writer.add_key_value_metadata(
            {META_CLIPS: json.dumps(entries), META_SETTINGS: self.settings_key, META_FORMAT: SHARD_FORMAT}
        )
        self._writer.close()
        self._writer = None
        self._stack.close()  # renames the temporary file onto the shard's name
        self._stack = None
        self.written_shards.append(self._name)
        log.debug("finished %s: %d clips, %.1f MB", self._name, len(self._clips), self._bytes / 2**20)

    def _abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        if self._stack is not None:
            with contextlib.suppress(Exception):
                self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)  # removes the temporary file
            self._stack = None

    def close(self) -> None:
        """Finish the open shard (if any)."""
        if self._writer is not None:
            if self._clips:
                self._finish()
            else:
                self._abort()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None or not self._in_write:
            self.close()
        else:
            self._abort()


def build_index_table(rows: Sequence[Mapping[str, Any]], metadata: Mapping[str, str] | None = None) -> pa.Table:
    """An index table from one mapping per clip.

    An index table from one mapping per clip (keys: INDEX_COLUMNS); ``metadata`` keys get a
    ``maedfer.`` prefix in the Parquet schema metadata.
    """
    columns = {name: [row[name] for row in rows] for name in INDEX_COLUMNS}
    meta = {f"maedfer.{k}".encode(): str(v).encode() for k, v in (metadata or {}).items()}
    schema = INDEX_SCHEMA.with_metadata(meta or None)
    return pa.Table.from_pydict(columns, schema=schema)


def write_index(index_path: str | os.PathLike, table: pa.Table) -> None:
    """Write an index table atomically."""
    if tuple(table.column_names) != INDEX_COLUMNS:
        raise ValueError(f"index columns {table.column_names} differ from INDEX_COLUMNS")
    with atomic_path(index_path) as tmp:
        pq.write_table(table, tmp)
