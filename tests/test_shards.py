"""Parquet shards: round trip, one row group per clip, size bound, index schema, checksums, resume."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from maedfer.data.records import INDEX_COLUMNS, SHARD_COLUMNS
from maedfer.data.shards import (
    ShardChecksumError,
    ShardError,
    ShardWriter,
    build_index_table,
    clip_checksum,
    index_metadata,
    list_shards,
    read_clip_frames,
    read_index,
    read_shard_clips,
    verify_index,
    verify_shard,
    write_index,
)


def fake_clip(i: int, n: int = 4, size: int = 300) -> list[bytes]:
    """n distinct byte strings (stand-ins for JPEG frames) of about ``size`` bytes."""
    rng = np.random.default_rng(i)
    return [rng.integers(0, 256, size + j, dtype=np.uint8).tobytes() for j in range(n)]


def index_rows(clips) -> list[dict]:
    return [
        dict(
            clip_id=c.clip_id,
            label=i % 3,
            label_name=f"class{i % 3}",
            subject=None if i % 2 else f"s{i}",
            train_folds=[1, 2],
            test_folds=[3],
            shard=c.shard,
            row=c.row,
            num_frames=c.num_frames,
            height=c.height,
            width=c.width,
            fps=c.fps,
            checksum=c.checksum,
            source=f"videos/{c.clip_id}.mp4",
        )
        for i, c in enumerate(clips)
    ]


def write_clips(out, count: int, shard_bytes: int = 2**20, key: str = "settings-a"):
    data = {f"clip{i:03d}": fake_clip(i) for i in range(count)}
    with ShardWriter(out, key, shard_bytes) as writer:
        stored = [writer.add(cid, frames, height=8, width=8, fps=25.0, key="k") for cid, frames in data.items()]
    write_index(out / "index.parquet", build_index_table(index_rows(stored), {"dataset": "toy"}))
    return data, stored


def test_round_trip_one_row_group_per_clip(tmp_path):
    data, stored = write_clips(tmp_path, 5)
    shards = list_shards(tmp_path)
    assert [p.name for p in shards] == ["shard-00000.parquet"]
    pf = pq.ParquetFile(shards[0])
    assert tuple(pf.schema_arrow.names) == SHARD_COLUMNS
    assert pf.num_row_groups == 5
    assert all(pf.metadata.row_group(i).num_rows == 1 for i in range(5))
    for clip in stored:
        frames = data[clip.clip_id]
        assert read_clip_frames(tmp_path / clip.shard, clip.row, [3, 0, 0]) == [frames[3], frames[0], frames[0]]
        assert read_clip_frames(tmp_path / clip.shard, clip.row) == frames
        assert clip.checksum == clip_checksum(frames)
    with pytest.raises(IndexError, match="clip002"):
        read_clip_frames(tmp_path / stored[2].shard, stored[2].row, [4])
    with pytest.raises(FileNotFoundError, match="shard-00009"):
        read_clip_frames(tmp_path / "shards/shard-00009.parquet", 0, [0])
    # No temporary file is left behind.
    assert sorted(os.listdir(tmp_path / "shards")) == ["shard-00000.parquet"]


def test_index_schema_and_metadata(tmp_path):
    _, stored = write_clips(tmp_path, 3)
    table = read_index(tmp_path / "index.parquet")
    assert tuple(table.column_names) == INDEX_COLUMNS
    types = {f.name: f.type for f in table.schema}
    assert types["label"] == pa.int16() and types["row"] == pa.int32() and types["num_frames"] == pa.int32()
    assert types["height"] == pa.int16() and types["width"] == pa.int16() and types["fps"] == pa.float32()
    assert types["train_folds"] == pa.list_(pa.int8()) and types["subject"] == pa.string()
    assert table.column("subject").to_pylist() == ["s0", None, "s2"]
    assert index_metadata(table) == {"dataset": "toy"}
    assert verify_index(tmp_path / "index.parquet") == 3


def test_read_index_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m pipeline.ingest"):
        read_index(tmp_path / "index.parquet")
    pq.write_table(pa.table({"clip_id": ["a"], "label": [1]}), tmp_path / "index.parquet")
    with pytest.raises(ShardError, match="INDEX_COLUMNS"):
        read_index(tmp_path / "index.parquet")


def test_shard_size_bound(tmp_path):
    bound = 3000  # each fake clip holds about 1206 bytes: two clips per shard
    data, stored = write_clips(tmp_path, 7, shard_bytes=bound)
    shards = list_shards(tmp_path)
    assert len(shards) == 4
    for shard in shards:
        _, clips = read_shard_clips(shard)
        payload = sum(len(b) for c in clips for b in data[c.clip_id])
        assert payload <= bound
        assert pq.ParquetFile(shard).num_row_groups == len(clips) == 2 or shard == shards[-1]
    assert [c.shard for c in stored] == [f"shards/shard-{i // 2:05d}.parquet" for i in range(7)]
    assert [c.row for c in stored] == [i % 2 for i in range(7)]
    # A clip larger than the bound gets a shard of its own.
    big = tmp_path / "big"
    with ShardWriter(big, "s", shard_bytes=100) as writer:
        writer.add("a", fake_clip(0), height=8, width=8, fps=0.0, key="k")
        writer.add("b", fake_clip(1), height=8, width=8, fps=0.0, key="k")
    assert len(list_shards(big)) == 2


def _corrupt_frame(shard_path, frame: bytes) -> None:
    raw = bytearray(shard_path.read_bytes())
    at = raw.find(frame)
    assert at >= 0
    raw[at + 10] ^= 0xFF
    shard_path.write_bytes(bytes(raw))


def test_checksum_mismatch_names_shard_and_clip(tmp_path):
    data, stored = write_clips(tmp_path, 6, shard_bytes=3000)
    victim = stored[3]
    shard = tmp_path / victim.shard
    verify_shard(shard)  # intact
    _corrupt_frame(shard, data[victim.clip_id][2])
    with pytest.raises(ShardChecksumError, match=rf"shard-00001\.parquet.*{victim.clip_id}"):
        verify_shard(shard)
    with pytest.raises(ShardChecksumError, match=victim.clip_id):
        verify_index(tmp_path / "index.parquet")
    with pytest.raises(ShardChecksumError, match=victim.clip_id):
        read_clip_frames(shard, victim.row, [0], expected_checksum=victim.checksum)
    # The other clip of that shard is intact.
    other = stored[2]
    assert read_clip_frames(shard, other.row, [1], expected_checksum=other.checksum) == [data[other.clip_id][1]]


def test_resume_keeps_finished_shards(tmp_path):
    data = {f"c{i}": fake_clip(i) for i in range(6)}
    with pytest.raises(RuntimeError, match="interrupted"):
        with ShardWriter(tmp_path, "s1", shard_bytes=3000) as writer:
            for i, (cid, frames) in enumerate(data.items()):
                if i == 3:
                    raise RuntimeError("interrupted")
                writer.add(cid, frames, height=8, width=8, fps=0.0, key=f"key-{cid}")
    # The open shard was finished on the exception: all 3 clips survive, in 2 shards.
    assert len(list_shards(tmp_path)) == 2
    (tmp_path / "shards" / ".shard-00002.parquet.abc.parquet").write_bytes(b"partial")  # a killed run's leftover
    mtimes = {p: p.stat().st_mtime_ns for p in list_shards(tmp_path)}

    resumed = ShardWriter(tmp_path, "s1", shard_bytes=3000)
    assert not (tmp_path / "shards" / ".shard-00002.parquet.abc.parquet").exists()
    assert resumed.lookup("c1", "key-c1") is not None
    assert resumed.lookup("c1", "other-key") is None  # source changed: must be rewritten
    assert resumed.lookup("c4", "key-c4") is None
    with resumed:
        clip = resumed.add("c4", data["c4"], height=8, width=8, fps=0.0, key="key-c4")
    assert clip.shard == "shards/shard-00002.parquet"
    assert {p: p.stat().st_mtime_ns for p in list_shards(tmp_path) if p in mtimes} == mtimes

    # Other settings: the old shards are removed, numbering restarts.
    fresh = ShardWriter(tmp_path, "s2")
    assert fresh.existing == {} and list_shards(tmp_path) == []
