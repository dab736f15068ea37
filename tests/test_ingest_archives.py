"""Ingest on archive-like input: mixed frame rates and sizes, clips shorter than 16 frames, corrupt members,
non-ASCII names; every clip is either stored or named in the report with its reason."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np

from maedfer.data.ingest import ingest
from maedfer.data.records import ClipRecord, FaceMode, SourceKind
from maedfer.data.sampling import eval_clip_indices
from maedfer.data.shards import read_clip_frames, read_index, verify_index
from tests.test_video_io import colour_frames, write_frame_folder, write_video


def ramp(n: int, height: int, width: int) -> list[np.ndarray]:
    """n RGB frames (any n): red = 10 * t, a bright top half."""
    frames = []
    for t in range(n):
        f = np.full((height, width, 3), 60, np.uint8)
        f[..., 0] = (10 * t) % 256
        f[: height // 2, :, 1] = 200
        frames.append(f)
    return frames


def test_mixed_archive_is_stored_or_reported_clip_by_clip(tmp_path):
    root = tmp_path / "archive"
    records = []

    def add(clip_id: str, source: str, kind: SourceKind = SourceKind.VIDEO) -> None:
        records.append(ClipRecord(clip_id, source, kind, label=len(records) % 2, label_name="x"))

    # Mixed frame rates and sizes, non-ASCII file names.
    write_video(root / "vidéo_été.mp4", ramp(20, 240, 320), fps=30)
    add("vidéo_été", "vidéo_été.mp4")
    write_video(root / "表情" / "笑顔.avi", ramp(18, 360, 640), fps=15)
    add("表情/笑顔", "表情/笑顔.avi")
    write_video(root / "tiny.mp4", colour_frames(5, 224, 224), fps=24)  # shorter than 16 frames: kept as is
    add("tiny", "tiny.mp4")
    # A frame folder whose images differ in size, under a non-ASCII name.
    folder = write_frame_folder(root / "frames" / "Ærø", colour_frames(4, 100, 120), ext=".jpg")
    cv2.imwrite(str(folder / "frame_5.jpg"), np.full((80, 200, 3), 90, np.uint8))
    add("Ærø", "frames/Ærø", SourceKind.FRAMES)
    # Corrupt members.
    (root / "garbage.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(2000))
    add("garbage", "garbage.mp4")
    (root / "empty.mp4").write_bytes(b"")
    add("empty", "empty.mp4")
    bad = write_frame_folder(root / "frames" / "bad", colour_frames(3, 64, 64), ext=".png")
    (bad / "frame_2.png").write_bytes(b"\x89PNG broken")
    add("bad", "frames/bad", SourceKind.FRAMES)
    add("missing", "nowhere/missing.mp4")

    out = tmp_path / "out"
    report = ingest(records, root, out, FaceMode.PRECROPPED, size=64, class_names=["x", "y"], progress=False)

    stored = read_index(out / "index.parquet")
    ids = stored.column("clip_id").to_pylist()
    assert ids == ["vidéo_été", "表情/笑顔", "tiny", "Ærø"]
    assert stored.column("source").to_pylist()[1] == "表情/笑顔.avi"
    assert stored.column("fps").to_pylist() == [30.0, 15.0, 24.0, 0.0]
    assert stored.column("num_frames").to_pylist() == [20, 18, 5, 5]
    assert set(stored.column("height").to_pylist()) == {64} and set(stored.column("width").to_pylist()) == {64}
    assert verify_index(out / "index.parquet") == 4

    # None lost silently: every record is stored or named with its reason and a message naming the file.
    assert report.seen == len(records) == report.stored + report.num_skipped
    assert report.skipped == {"unreadable_video": ["garbage", "empty"], "unreadable_frame": ["bad"],
                              "missing_source": ["missing"]}
    saved = json.loads((out / "report.json").read_text())
    for reason, clip_ids in saved["skipped"].items():
        for clip_id in clip_ids:
            assert saved["skipped_detail"][clip_id], (reason, clip_id)
    assert "frame_2.png" in saved["skipped_detail"]["bad"] and "empty.mp4" in saved["skipped_detail"]["empty"]

    # The 5-frame clip feeds the model as the authors pad it: the last frame repeated up to 16.
    row = stored.slice(2, 1).to_pylist()[0]
    positions = eval_clip_indices(row["num_frames"], 16, 4, 2)
    assert positions.shape == (2, 16) and positions.max() == 4 and (positions[:, -1] == 4).all()
    frames = read_clip_frames(out / row["shard"], row["row"], sorted(set(positions[0].tolist())))
    assert len(frames) == 2  # stored frames 0 and 4 (stride 4), the rest repeats frame 4

    # A re-run changes nothing, non-ASCII names included.
    again = ingest(records, root, out, FaceMode.PRECROPPED, size=64, class_names=["x", "y"], progress=False)
    assert again.up_to_date and again.reused == 4
