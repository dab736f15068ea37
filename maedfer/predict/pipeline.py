"""Video file -> face tracks -> test-loader windows -> class probabilities per window and overall.

Each window's frames are prepared as the training data were: the face crop of
:mod:`maedfer.data.faces` at the ingest stage's size (160) stored as the ingest stage stores it
(JPEG, quality 90, decoded by the loaders' decoder), then the test loader's
:func:`~maedfer.data.transforms.eval_transform` (resize to the model's input side, centre crop,
ImageNet normalisation) to (C, T, H, W).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from maedfer.constants import DEFAULT_STRIDE, IMG_SIZE
from maedfer.data.datasets import decode_frames
from maedfer.data.faces import MtcnnSettings, NoFaceError, crop_box
from maedfer.data.ingest_work import encode_jpeg
from maedfer.data.transforms import eval_transform
from maedfer.data.video_io import read_frames
from maedfer.predict.loading import LoadedModel, load_for_prediction
from maedfer.predict.result import PredictionResult, Timing, TrackPrediction, WindowPrediction
from maedfer.predict.tracks import FaceTrack, all_face_tracks, largest_face_track
from maedfer.predict.windows import Window, default_hop, plan_windows, time_weighted

log = logging.getLogger(__name__)

ASSUMED_FPS = 25.0
INGEST_JPEG_QUALITY = 90  # the ingest stage's default quality: crops carry the same artefacts
DEFAULT_DETECT_EVERY = 3


class NoFaceInVideoError(NoFaceError):
    """No face is found in any frame of a video (the message names the file)."""


class VideoTooLongError(ValueError):
    """A video whose decoded frames would not fit in memory."""


@dataclass
class PredictSettings:
    """How a video is sampled and cropped (the model fixes clip length and input size)."""

    frame_stride: int = DEFAULT_STRIDE  # frames between the sampled frames of a window (test protocol: 4)
    hop: int | None = None  # frames between window starts; None = half a window
    detect_every: int = DEFAULT_DETECT_EVERY  # MTCNN on every k-th frame, boxes interpolated between
    all_faces: bool = False  # every face track instead of the largest face
    batch_size: int = 8  # windows per forward pass
    max_frames: int | None = None  # only the first frames of the video
    crop_size: int = IMG_SIZE  # side of the stored crops (the ingest stage's size)
    mtcnn: MtcnnSettings = field(default_factory=MtcnnSettings)

    def validate(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        for name in ("frame_stride", "detect_every", "batch_size", "crop_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.hop is not None and self.hop < 1:
            raise ValueError(f"--stride (the window hop) must be at least 1 frame, got {self.hop}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {self.max_frames}")


def _available_memory() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on this platform
        return None


def check_memory(path: str | os.PathLike, fraction: float = 0.8) -> None:
    """Refuse a video too large to decode into memory.

    Refuse, with a clear message, a video whose decoded frames would not fit in memory (the reader
    decodes whole videos): frame count x width x height x 3 bytes > ``fraction`` of available memory.
    """
    if Path(path).is_dir() or not Path(path).is_file():
        return
    cap = cv2.VideoCapture(str(path))
    try:
        count, width, height = (
            int(cap.get(p) or 0)
            for p in (cv2.CAP_PROP_FRAME_COUNT, cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT)
        )
    finally:
        cap.release()
    need, available = count * width * height * 3, _available_memory()
    if available and need > fraction * available:
        raise VideoTooLongError(
            f"{path}: {count} frames of {width}x{height} need {need / 2**30:.1f} GiB decoded, more than the "
            f"{available / 2**30:.1f} GiB of memory available; cut it into shorter videos first "
            "(e.g. ffmpeg -i IN -ss 0 -t 60 OUT.mp4)"
        )


def _short_clip_note(n: int, window: Window, clip_len: int, frame_stride: int) -> str | None:
    if not window.padded:
        return None
    real = len(range(0, n, frame_stride))
    if n < clip_len:
        return (
            f"clip shorter than {clip_len} frames ({n}): padded to {clip_len} by repeating its last frame, "
            "as the test loader does"
        )
    return (
        f"clip shorter than one window ({n} < {clip_len} x {frame_stride} frames): its {real} sampled frames "
        f"padded to {clip_len} by repeating the last, as the test loader does"
    )


class Predictor:
    """A loaded classifier plus prediction settings; call :meth:`predict` once per video."""

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        *,
        class_names: Sequence[str] | None = None,
        device: str | torch.device | None = None,
        settings: PredictSettings | None = None,
        loaded: LoadedModel | None = None,
        trust_pickle: bool = False,
    ) -> None:
        self.settings = settings or PredictSettings()
        self.settings.validate()
        names = list(class_names) if class_names else None
        self.loaded = loaded or load_for_prediction(checkpoint, names, device, trust_pickle=trust_pickle)
        self.transform = eval_transform(self.loaded.img_size)
        self.detector_device = self.loaded.device.type if self.loaded.device.type == "cuda" else "cpu"

    @property
    def clip_len(self) -> int:
        """Frames per window (the model's clip length)."""
        return self.loaded.num_frames

    # ------------------------------------------------------------------------------------------

    def crops(self, frames: Sequence[np.ndarray], track: FaceTrack, indices: np.ndarray) -> dict[int, torch.Tensor]:
        """uint8 (3, S, S) crop per distinct frame index, as the ingest stage stores it and the loader decodes it."""
        s = self.settings
        wanted = sorted({int(i) for i in indices.reshape(-1)})
        jpegs = [encode_jpeg(crop_box(frames[i], track.crop_box(i), s.crop_size), INGEST_JPEG_QUALITY) for i in wanted]
        decoded = decode_frames(jpegs)  # (U, 3, S, S)
        return dict(zip(wanted, decoded, strict=True))

    @torch.inference_mode()
    def window_probs(self, frames: Sequence[np.ndarray], track: FaceTrack, windows: list[Window]) -> np.ndarray:
        """Class probabilities (W, C) of each window of one track."""
        model, device = self.loaded.model, self.loaded.device
        crops = self.crops(frames, track, np.stack([w.indices for w in windows]))
        out = []
        batches = range(0, len(windows), self.settings.batch_size)
        for b in tqdm(batches, desc=f"track {track.track_id}", unit="batch", leave=False, disable=None):
            clips = [
                self.transform(torch.stack([crops[int(i)] for i in w.indices]), None)  # (C, T, H, W)
                for w in windows[b : b + self.settings.batch_size]
            ]
            logits = model(torch.stack(clips).to(device))  # (B, classes)
            out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
        return np.concatenate(out)  # (W, C)

    def tracks(self, frames: Sequence[np.ndarray], fps: float) -> list[FaceTrack]:
        """The face tracks of a video: the largest face, or every face with ``all_faces``."""
        s = self.settings
        if s.all_faces:
            return all_face_tracks(frames, s.mtcnn, s.detect_every, self.detector_device, fps)
        return [largest_face_track(frames, s.mtcnn, s.detect_every, self.detector_device)]

    def predict_track(self, frames: Sequence[np.ndarray], track: FaceTrack, fps: float) -> TrackPrediction:
        """Window and overall predictions of one face track."""
        s, names = self.settings, self.loaded.class_names
        windows = plan_windows(track.first, track.last, self.clip_len, s.frame_stride, s.hop)
        probs = self.window_probs(frames, track, windows)  # (W, C)
        overall = time_weighted(probs, windows)  # (C,)
        rows = [
            WindowPrediction(w.start, w.end, w.start / fps, (w.end + 1) / fps, p, names[int(np.argmax(p))])
            for w, p in zip(windows, probs, strict=True)
        ]
        note = _short_clip_note(track.last - track.first + 1, windows[0], self.clip_len, s.frame_stride)
        return TrackPrediction(
            track.track_id,
            track.first,
            track.last,
            track.crop_boxes,
            track.hits,
            track.detection_frames,
            rows,
            overall,
            names[int(np.argmax(overall))],
            [note] if note else [],
        )

    def predict(self, path: str | os.PathLike, annotate: str | os.PathLike | None = None) -> PredictionResult:
        """Predict one video (or folder of frames); write an annotated copy to ``annotate`` if given.

        Raises (all ValueError subclasses, each naming the file): UnreadableVideoError for a missing,
        empty or undecodable file, VideoTooLongError when its decoded frames would not fit in memory,
        NoFaceInVideoError when no frame holds a face.
        """
        s = self.settings
        timing = Timing()
        notes = list(self.loaded.notes)
        start = time.perf_counter()
        check_memory(path)
        frames, fps = read_frames(path)
        if s.max_frames is not None and len(frames) > s.max_frames:
            notes.append(f"only the first {s.max_frames} of {len(frames)} frames were used (max_frames)")
            frames = frames[: s.max_frames]
        if not (fps > 0 and math.isfinite(fps)):
            notes.append(f"frame rate unknown: {ASSUMED_FPS:g} fps assumed for times")
            fps = ASSUMED_FPS
        timing.decode_s = time.perf_counter() - start
        timing.frames = len(frames)
        h, w = frames[0].shape[:2]
        log.info("%s: %d frames, %dx%d, %.3f fps", path, len(frames), w, h, fps)

        start = time.perf_counter()
        try:
            tracks = self.tracks(frames, fps)
        except NoFaceError:
            raise NoFaceInVideoError(
                f"{path}: no face found in any of its {len(frames)} frames (MTCNN, probability >= "
                f"{s.mtcnn.min_prob}); use a video showing a face"
            ) from None
        timing.detect_s = time.perf_counter() - start

        start = time.perf_counter()
        predictions = [self.predict_track(frames, t, fps) for t in tracks]
        timing.model_s = time.perf_counter() - start

        result = PredictionResult(
            video=str(path),
            fps=float(fps),
            frames=len(frames),
            width=int(w),
            height=int(h),
            checkpoint=str(self.loaded.path),
            model=self.loaded.arch,
            class_names=list(self.loaded.class_names),
            settings={
                "frame_stride": s.frame_stride,
                "clip_len": self.clip_len,
                "window_frames": self.clip_len * s.frame_stride,
                "hop": s.hop if s.hop is not None else default_hop(self.clip_len, s.frame_stride),
                "detect_every": s.detect_every,
                "all_faces": s.all_faces,
                "device": str(self.loaded.device),
            },
            tracks=predictions,
            notes=notes,
            timing=timing,
        )
        if annotate is not None:
            from maedfer.predict.annotate import write_annotated

            start = time.perf_counter()
            result.annotated = str(write_annotated(frames, fps, result, annotate))
            timing.annotate_s = time.perf_counter() - start
        log.info("%s: %s (%.1f frames/s)", path, result.label, timing.frames_per_s)
        return result


def predict(
    path: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    *,
    annotate: str | os.PathLike | None = None,
    all_faces: bool = False,
    hop: int | None = None,
    frame_stride: int = DEFAULT_STRIDE,
    detect_every: int = DEFAULT_DETECT_EVERY,
    device: str | torch.device | None = None,
    class_names: Sequence[str] | None = None,
    max_frames: int | None = None,
    batch_size: int = 8,
    trust_pickle: bool = False,
) -> PredictionResult:
    """Facial-expression probabilities of one video, per window and for the whole video.

    ``checkpoint``: a maedfer model file or an official fine-tuned MAE-DFER checkpoint (default: the
    demo run's ``runs/demo/finetune/mae_dfer/dfew/fold1/model.pt``). Class names come from ``class_names``,
    else the checkpoint, else DFEW's seven for a 7-class model.

    Faces: MTCNN on every ``detect_every``-th frame, the largest face (every face track with
    ``all_faces``), boxes interpolated, smoothed and squared as at ingest. Windows: the model's
    ``num_frames`` frames taken every ``frame_stride`` frames (the test loader's sampling), a new
    window every ``hop`` frames (default half a window) plus one ending on the last frame; a video
    shorter than a window is padded like the test loader (and ``notes`` says so).

    Overall probabilities are time-weighted: the mean of the windows' probabilities, each window
    weighted by the number of frames it covers. ``annotate``: write an annotated mp4 copy there.
    ``trust_pickle``: allow full unpickling of an official checkpoint (only a file you trust).
    """
    settings = PredictSettings(
        frame_stride=frame_stride,
        hop=hop,
        detect_every=detect_every,
        all_faces=all_faces,
        batch_size=batch_size,
        max_frames=max_frames,
    )
    predictor = Predictor(
        checkpoint, class_names=class_names, device=device, settings=settings, trust_pickle=trust_pickle
    )
    return predictor.predict(path, annotate=annotate)


def annotated_path(out: str | os.PathLike, video: str | os.PathLike, several: bool) -> Path:
    """The path of the annotated copy of ``video``.

    Where the annotated copy of ``video`` goes: ``out`` itself for one video to a file name,
    ``out/<stem>_annotated.mp4`` when ``out`` is a folder or several videos are annotated.
    """
    out = Path(out)
    if several or out.is_dir() or not out.suffix:
        return out / f"{Path(video).stem}_annotated.mp4"
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"{out}: the annotated copy is an .mp4 file; name it OUT.mp4 (or give a folder)")
    return out
