"""An annotated copy of a video.

An annotated copy of a video: every face track's crop box, its current window's label and one
probability bar per class.

The current window of a frame is the window of that track covering the frame whose centre is
nearest. The copy keeps the source's frame size, frame rate and frame count. It is H.264
(libx264, yuv420p, ``+faststart``: plays in browsers and common players) through ffmpeg-python
when the ``ffmpeg`` command has libx264, otherwise MPEG-4 Part 2 (OpenCV's ``mp4v``); both
need even sides, so an odd height or width gains one repeated edge row or column (and a note).
It is written to a temporary name, read back with OpenCV to check the frame count and size, then
renamed onto the target.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from maedfer.io_utils import atomic_path
from maedfer.predict.result import PredictionResult, TrackPrediction

log = logging.getLogger(__name__)

# RGB colours of tracks 0, 1, ... (cycled)
PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 200, 0),
    (0, 220, 255),
    (255, 80, 200),
    (120, 255, 80),
    (255, 120, 60),
    (160, 140, 255),
)
FONT = cv2.FONT_HERSHEY_SIMPLEX


class AnnotateError(ValueError):
    """The annotated copy could not be written or does not read back intact."""


# ----------------------------------------------------------------------------------------------
# Drawing


def window_per_frame(track: TrackPrediction) -> np.ndarray:
    """For each frame of the track's span, the index of its current window (nearest centre)."""
    frames = np.arange(track.first_frame, track.last_frame + 1)
    best = np.full(len(frames), -1)
    best_dist = np.full(len(frames), np.inf)
    for k, w in enumerate(track.windows):
        inside = (frames >= w.start_frame) & (frames <= w.end_frame)
        dist = np.abs((w.start_frame + w.end_frame) / 2 - frames)
        better = inside & (dist < best_dist)
        best[better], best_dist[better] = k, dist[better]
    return best


class Painter:
    """Draws the overlays of one video's tracks on its RGB frames (sizes scale with the frame)."""

    def __init__(self, result: PredictionResult) -> None:
        self.result = result
        self.current = [window_per_frame(t) for t in result.tracks]
        self.scale = max(0.6, min(result.width, result.height) / 360)
        self.font = 0.42 * self.scale
        self.row = max(10, int(round(16 * self.scale)))
        self.bar = int(round(90 * self.scale))
        self.thick = max(1, int(round(1.5 * self.scale)))
        names = result.class_names
        self.name_w = max(cv2.getTextSize(n, FONT, self.font, 1)[0][0] for n in names) + int(6 * self.scale)
        self.value_w = cv2.getTextSize("0.00", FONT, self.font, 1)[0][0] + int(6 * self.scale)

    def _panel_size(self) -> tuple[int, int]:
        pad = int(4 * self.scale)
        width = pad * 2 + self.name_w + self.bar + self.value_w
        height = pad * 2 + self.row * (len(self.result.class_names) + 1)
        return width, height

    def _panel_origin(self, box: np.ndarray, size: tuple[int, int]) -> tuple[int, int]:
        """Top-left of the bars panel: right of the box if it fits, else left, else inside the frame."""
        w, h = size
        fw, fh = self.result.width, self.result.height
        gap = int(6 * self.scale)
        x = int(box[2]) + gap
        if x + w > fw:
            x = int(box[0]) - gap - w
        x = int(np.clip(x, 0, max(0, fw - w)))
        y = int(np.clip(int(box[1]), 0, max(0, fh - h)))
        return x, y

    def draw(self, frame: np.ndarray, index: int) -> np.ndarray:
        """A copy of RGB frame ``index`` with every track present there drawn on it."""
        out = np.ascontiguousarray(frame.copy())
        for k, track in enumerate(self.result.tracks):
            if not track.first_frame <= index <= track.last_frame:
                continue
            w = self.current[k][index - track.first_frame]
            if w < 0:
                continue
            self._draw_track(
                out,
                track,
                track.crop_boxes[index - track.first_frame],
                track.windows[w].probs,
                PALETTE[k % len(PALETTE)],
            )
        return out

    def _draw_track(
        self, out: np.ndarray, track: TrackPrediction, box: np.ndarray, probs: np.ndarray, colour: tuple[int, int, int]
    ) -> None:
        names = self.result.class_names
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, self.thick, cv2.LINE_AA)
        top = int(np.argmax(probs))
        width, height = self._panel_size()
        px, py = self._panel_origin(box, (width, height))
        region = out[py : py + height, px : px + width]
        region[:] = (region.astype(np.float32) * 0.35).astype(np.uint8)  # darkened background
        pad = int(4 * self.scale)
        baseline = py + pad + self.row - int(4 * self.scale)
        title = f"#{track.track_id} {names[top]} {probs[top]:.2f}"
        cv2.putText(out, title, (px + pad, baseline), FONT, self.font, colour, 1, cv2.LINE_AA)
        for c, (name, p) in enumerate(zip(names, probs, strict=True)):
            y = py + pad + self.row * (c + 1)
            text_y = y + self.row - int(4 * self.scale)
            cv2.putText(out, name, (px + pad, text_y), FONT, self.font, (235, 235, 235), 1, cv2.LINE_AA)
            bx = px + pad + self.name_w
            by1, by2 = y + int(3 * self.scale), y + self.row - int(3 * self.scale)
            cv2.rectangle(out, (bx, by1), (bx + self.bar, by2), (90, 90, 90), 1)
            fill = bx + int(round(float(p) * self.bar))
            if fill > bx:
                cv2.rectangle(out, (bx, by1), (fill, by2), colour if c == top else (200, 200, 200), -1)
            cv2.putText(
                out,
                f"{p:.2f}",
                (bx + self.bar + int(4 * self.scale), text_y),
                FONT,
                self.font,
                (235, 235, 235),
                1,
                cv2.LINE_AA,
            )


# ----------------------------------------------------------------------------------------------
# Writing


@functools.cache
def ffmpeg_has_libx264() -> bool:
    """True when an ``ffmpeg`` command with the libx264 encoder is on PATH."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return False
    try:
        done = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and "libx264" in done.stdout


def _write_ffmpeg(frames_rgb, path: Path, width: int, height: int, fps: float) -> None:
    import ffmpeg  # ffmpeg-python

    rate = Fraction(fps).limit_denominator(1001)
    proc = (
        ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", framerate=str(rate))
        .output(str(path), vcodec="libx264", pix_fmt="yuv420p", crf=20, preset="veryfast", movflags="+faststart")
        .global_args("-loglevel", "error", "-nostats")
        .overwrite_output()
        .run_async(pipe_stdin=True, pipe_stderr=True)
    )
    try:
        for frame in frames_rgb:
            proc.stdin.write(np.ascontiguousarray(frame).tobytes())
    except BrokenPipeError:
        pass  # ffmpeg died: its exit status and message are reported below
    finally:
        proc.stdin.close()
    err = proc.stderr.read().decode(errors="replace").strip()
    if proc.wait() != 0:
        raise AnnotateError(f"ffmpeg failed writing {path}: {err.splitlines()[-1] if err else 'no message'}")


def _write_cv2(frames_rgb, path: Path, width: int, height: int, fps: float) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
    if not writer.isOpened():
        raise AnnotateError(f"OpenCV cannot open a mp4v writer for {path}")
    try:
        for frame in frames_rgb:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def read_back(path: str | os.PathLike) -> tuple[int, int, int]:
    """(frames decoded, width, height) of a video as OpenCV reads it."""
    cap = cv2.VideoCapture(str(path))
    count, size = 0, (0, 0)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            count += 1
            size = (frame.shape[1], frame.shape[0])
    finally:
        cap.release()
    return count, size[0], size[1]


def write_annotated(frames: Sequence[np.ndarray], fps: float, result: PredictionResult, out: str | os.PathLike) -> Path:
    """Write the annotated copy of ``frames`` (RGB) to ``out`` (.mp4) atomically; returns ``out``."""
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise AnnotateError(f"{out}: the annotated copy is an .mp4 file; name it OUT.mp4")
    height, width = frames[0].shape[:2]
    painter = Painter(result)
    # H.264 in yuv420p (and OpenCV's mp4v) need even sides: odd ones gain one replicated row/column
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        result.notes.append(
            f"annotated copy is {width + pad_w}x{height + pad_h}: one edge row/column repeated (codecs need even sizes)"
        )
        height, width = height + pad_h, width + pad_w

    def rendered():
        for t in tqdm(range(len(frames)), desc="annotate", unit="frame", leave=False, disable=None):
            frame = painter.draw(frames[t], t)
            yield np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge") if pad_h or pad_w else frame

    writers = [("libx264", _write_ffmpeg)] if ffmpeg_has_libx264() else []
    writers.append(("mp4v", _write_cv2))
    with atomic_path(out) as tmp:
        for k, (codec, write) in enumerate(writers):
            try:
                write(rendered(), tmp, width, height, fps)
                count, w, h = read_back(tmp)
                if (count, w, h) != (len(frames), width, height):
                    raise AnnotateError(
                        f"{out}: wrote {len(frames)} frames of {width}x{height} but reads back {count} of {w}x{h}"
                    )
            except AnnotateError as exc:
                if k == len(writers) - 1:
                    raise
                log.warning("%s; trying %s", exc, writers[k + 1][0])
                continue
            log.info("annotated copy %s (%s, %d frames)", out, codec, len(frames))
            break
    return out
