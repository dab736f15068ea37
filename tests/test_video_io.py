"""Reading frames from video files (OpenCV, ffmpeg fallback) and frame folders."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from maedfer.data.video_io import (
    UnreadableFrameError,
    UnreadableVideoError,
    list_frame_files,
    natural_key,
    read_frames,
    read_with_ffmpeg,
)

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg command not installed")


def colour_frames(n: int, height: int = 64, width: int = 96) -> list[np.ndarray]:
    """RGB frames: frame t has red = 20 * t + 10, green 200 in the top half, blue 60."""
    frames = []
    for t in range(n):
        f = np.zeros((height, width, 3), np.uint8)
        f[..., 0] = 20 * t + 10
        f[: height // 2, :, 1] = 200
        f[..., 2] = 60
        frames.append(f)
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    """Write RGB frames with OpenCV: .avi as MJPG, anything else as MPEG-4 part 2."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), fourcc, fps, (width, height))
    assert writer.isOpened(), f"cannot write {path}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_flv(path: Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    """Write RGB frames as an FLV (Sorenson H.263, like CREMA-D) with the ffmpeg command line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}"]
    cmd += ["-r", str(fps), "-i", "pipe:", "-c:v", "flv1", "-q:v", "2", str(path)]
    subprocess.run(cmd, input=np.stack(frames).tobytes(), check=True)
    return path


def write_frame_folder(folder: Path, frames: list[np.ndarray], ext: str = ".png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"frame_{t + 1}{ext}"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_read_video(tmp_path, suffix):
    frames = colour_frames(8)
    path = write_video(tmp_path / f"clip{suffix}", frames, fps=25)
    got, fps = read_frames(path)
    assert len(got) == 8 and fps == pytest.approx(25.0)
    for t, frame in enumerate(got):
        assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8
        # RGB order and content (lossy codecs: a few levels of error)
        assert abs(float(frame[..., 0].mean()) - (20 * t + 10)) < 6
        assert frame[:20, :, 1].mean() > 185 and frame[-20:, :, 1].mean() < 15
        assert abs(float(frame[..., 2].mean()) - 60) < 6


@needs_ffmpeg
def test_flv_and_ffmpeg_fallback(tmp_path):
    frames = colour_frames(6)
    path = write_flv(tmp_path / "1001_DFA_ANG_XX.flv", frames, fps=30)
    got, fps = read_frames(path)
    assert len(got) == 6 and fps == pytest.approx(30.0)
    via_ffmpeg, fps_ffmpeg = read_with_ffmpeg(path)  # the path taken when OpenCV cannot open a container
    assert fps_ffmpeg == pytest.approx(30.0) and len(via_ffmpeg) == 6
    for a, b, ref in zip(got, via_ffmpeg, frames, strict=True):
        assert a.shape == b.shape == (64, 96, 3)
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 3
        assert np.abs(b.astype(int) - ref.astype(int)).mean() < 8


def test_frame_folder_natural_order(tmp_path):
    frames = colour_frames(12)
    folder = write_frame_folder(tmp_path / "00001", frames)
    (folder / "notes.txt").write_text("not a frame")
    assert [p.name for p in list_frame_files(folder)][:3] == ["frame_1.png", "frame_2.png", "frame_3.png"]
    got, fps = read_frames(folder)
    assert fps == 0.0 and len(got) == 12
    for a, b in zip(got, frames, strict=True):
        np.testing.assert_array_equal(a, b)  # png: lossless, RGB order kept
    assert sorted(["f10", "f2", "F1"], key=natural_key) == ["F1", "f2", "f10"]


def test_broken_sources_name_the_file(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 200)
    with pytest.raises(UnreadableVideoError, match="broken.mp4"):
        read_frames(bad)
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableVideoError, match="empty.avi"):
        read_frames(empty)
    with pytest.raises(UnreadableVideoError, match="missing.mp4"):
        read_frames(tmp_path / "missing.mp4")

    folder = write_frame_folder(tmp_path / "frames", colour_frames(3), ext=".jpg")
    (folder / "frame_2.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UnreadableFrameError, match="frame_2.jpg"):
        read_frames(folder)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(UnreadableFrameError, match="nothing"):
        read_frames(tmp_path / "nothing")


@needs_ffmpeg
def test_read_frames_falls_back_to_ffmpeg(tmp_path, monkeypatch):
    import maedfer.data.video_io as video_io

    path = write_video(tmp_path / "clip.mp4", colour_frames(5), fps=25)
    monkeypatch.setattr(video_io, "_read_with_cv2", lambda p: None)  # as when OpenCV cannot open a container
    got, fps = read_frames(path)
    assert len(got) == 5 and fps == pytest.approx(25.0) and got[0].shape == (64, 96, 3)
