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
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from maedfer.data.records import INDEX_COLUMNS, SHARD_COLUMNS
from maedfer.io_utils import atomic_path

log = logging.getLogger(__name__)

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


# ----------------------------------------------------------------------------------------------
# Reading


def read_index(index_path: str | os.PathLike) -> pa.Table:
    """Read a dataset index; checks that its columns are exactly ``INDEX_COLUMNS``."""
    index_path = Path(index_path)
    if not index_path.is_file():
        raise FileNotFoundError(
            f"{index_path}: no index; run "
            f"`python pipeline/ingest.py --dataset NAME --root ROOT --out {index_path.parent}`"
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
    try:
        return [frames[int(i)] for i in frame_indices]
    except IndexError:
        raise IndexError(
            f"{shard_path}: clip {clip_id!r} has {len(frames)} frames, asked for {list(frame_indices)}"
        ) from None


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


# ----------------------------------------------------------------------------------------------
# Writing


class ShardWriter:
    """Write clips into size-bounded shards under ``<out>/shards``, one row group per clip.

    On construction it recovers the finished shards already in ``<out>/shards``: those
    written with the same ``settings_key`` are kept (their clips are available through
    :meth:`lookup`), the others and any temporary leftovers of an interrupted run are
    removed. New shards are numbered after the kept ones.

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
            for clip in clips:  # later shards win if a clip was stored twice
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
    """An index table from one mapping per clip (keys: INDEX_COLUMNS); ``metadata`` keys get a
    ``maedfer.`` prefix in the Parquet schema metadata."""
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


def list_shards(out: str | os.PathLike) -> list[Path]:
    """Finished shard files of an ingested dataset, in order."""
    folder = Path(out) / SHARD_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if SHARD_PATTERN.match(p.name))
