"""Face crops for the three ``FaceMode`` values.

* ``FIXED_UPPER_CENTRE`` (VoxCeleb2, as in the paper): rows 0-159 and columns 32-191 of a
  224 x 224 frame; other frame sizes use the same fractions of height and width. Resized to
  ``size`` when that patch is not already ``size`` x ``size``.
* ``PRECROPPED`` (the owners' face crops of DFEW, FERV39k, MAFW): the whole frame resized to
  ``size`` x ``size``.
* ``MTCNN`` (raw lab videos: CREMA-D, RAVDESS, eNTERFACE05): facenet-pytorch's MTCNN run in
  batches over all frames (on CUDA when available, on a copy whose longer side is at most
  ``detect_max_side``); per frame the largest face with probability >= ``min_prob`` is kept;
  frames without one take their box from the nearest detected frames (linear interpolation
  between them, the nearest one at the ends); the box centre and size are smoothed over
  time (centred moving median, then centred moving mean, ``smooth_window`` frames); the crop
  is the square of side ``(1 + margin) * max(box width, box height)`` around the box centre
  (default margin 0.25: the whole face from hair line to chin with a little context, close to
  the framing of DFEW's released 224 x 224 crops), zero-padded where it leaves the frame,
  resized to ``size``. A clip where no frame has a face raises :class:`NoFaceError`.
  ``detect_every`` k > 1 (opt-in) runs MTCNN on every k-th frame and the last only; frames between
  two detections that agree (IoU >= ``REDETECT_IOU``) take interpolated boxes, the others are detected.

Stored size (opt-in, ``datasets.<name>.ingest.store_size``): :func:`store_frames` keeps the
crop at the source's own resolution (``"source"``: the whole frame for ``PRECROPPED``, the
unresized patch for ``FIXED_UPPER_CENTRE``) or at another square size, so that the loader can
resize it to the model input at load time the authors' way (PIL bilinear).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from maedfer.data.records import FaceMode

if TYPE_CHECKING:
    from facenet_pytorch import MTCNN

log = logging.getLogger(__name__)

# The paper's fixed patch of a 224 x 224 VoxCeleb2 frame: rows [0, 160), columns [32, 192).
FIXED_REFERENCE = 224
FIXED_ROWS = (0, 160)
FIXED_COLS = (32, 192)


class NoFaceError(ValueError):
    """No frame of a clip holds a detectable face."""


@dataclass(frozen=True)
class MtcnnSettings:
    """Detection and tracking parameters of ``FaceMode.MTCNN`` (all part of the ingest fingerprint)."""

    margin: float = 0.25  # crop side = (1 + margin) * max(box w, box h)
    min_prob: float = 0.9  # faces below this detection probability are ignored
    smooth_window: int = 5  # frames of the centred median and mean filters (1 = no smoothing)
    batch_size: int = 32  # frames per MTCNN call
    detect_max_side: int = 640  # frames are downscaled to at most this for detection only
    # Detect on every k-th frame (and the last) only; the frames between take interpolated boxes, unless the
    # two detections around them disagree (IoU < REDETECT_IOU or a miss): then those frames are detected too.
    detect_every: int = 1


# ----------------------------------------------------------------------------------------------
# Fixed and pre-cropped modes


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W, 3) to (size, size, 3); area averaging when shrinking, bilinear otherwise."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return np.ascontiguousarray(image)
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def fixed_upper_centre_box(height: int, width: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the paper's fixed patch scaled to a height x width frame."""
    top = round(FIXED_ROWS[0] * height / FIXED_REFERENCE)
    bottom = round(FIXED_ROWS[1] * height / FIXED_REFERENCE)
    left = round(FIXED_COLS[0] * width / FIXED_REFERENCE)
    right = round(FIXED_COLS[1] * width / FIXED_REFERENCE)
    return top, bottom, left, right


def crop_fixed_upper_centre(frame: np.ndarray, size: int) -> np.ndarray:
    """The fixed upper-centre square of ``frame`` resized to ``size`` x ``size`` (VoxCeleb2 framing)."""
    top, bottom, left, right = fixed_upper_centre_box(*frame.shape[:2])
    return resize_square(frame[top:bottom, left:right], size)  # (size, size, 3)


# ----------------------------------------------------------------------------------------------
# Box tracking (pure numpy; boxes are (T, 4) float arrays x1, y1, x2, y2, NaN rows = no face)


def largest_boxes(boxes: Sequence, probs: Sequence, min_prob: float) -> np.ndarray:
    """Per frame, the largest box with probability >= min_prob from MTCNN.detect's object arrays."""
    out = np.full((len(boxes), 4), np.nan)
    for t, (frame_boxes, frame_probs) in enumerate(zip(boxes, probs, strict=True)):
        if frame_boxes is None:
            continue
        b = np.asarray(frame_boxes, dtype=float).reshape(-1, 4)
        p = np.asarray(frame_probs, dtype=float).reshape(-1)
        keep = p >= min_prob
        if not keep.any():
            continue
        b = b[keep]
        areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        out[t] = b[int(np.argmax(areas))]
    return out


def fill_missing_boxes(boxes: np.ndarray) -> np.ndarray:
    """Fill NaN rows by linear interpolation between the nearest detected frames (nearest at the ends).

    Raises :class:`NoFaceError` if no row is detected.
    """
    boxes = np.asarray(boxes, dtype=float)
    found = ~np.isnan(boxes).any(axis=1)
    if not found.any():
        raise NoFaceError("no face detected in any frame")
    t = np.arange(len(boxes))
    return np.stack([np.interp(t, t[found], boxes[found, k]) for k in range(4)], axis=1)


def _centred_filter(values: np.ndarray, window: int, reduce) -> np.ndarray:
    """Apply ``reduce`` over a centred window along axis 0; the window shrinks at the ends."""
    half = window // 2
    n = len(values)
    return np.stack([reduce(values[max(0, i - half) : min(n, i + half + 1)], axis=0) for i in range(n)])


def smooth_boxes(boxes: np.ndarray, window: int = 5) -> np.ndarray:
    """Smooth box centre and size over time: centred moving median then centred moving mean."""
    boxes = np.asarray(boxes, dtype=float)
    if window <= 1 or len(boxes) < 2:
        return boxes.copy()
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    extent = boxes[:, 2:] - boxes[:, :2]
    params = np.concatenate([centre, extent], axis=1)  # (T, 4): cx, cy, w, h
    params = _centred_filter(params, window, np.median)
    params = _centred_filter(params, window, np.mean)
    centre, extent = params[:, :2], params[:, 2:]
    return np.concatenate([centre - extent / 2, centre + extent / 2], axis=1)


def square_boxes(boxes: np.ndarray, margin: float) -> np.ndarray:
    """Square boxes around each box centre, side (1 + margin) * max(width, height)."""
    boxes = np.asarray(boxes, dtype=float)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = (1.0 + margin) * np.max(boxes[:, 2:] - boxes[:, :2], axis=1, keepdims=True)
    return np.concatenate([centre - side / 2, centre + side / 2], axis=1)


def crop_box(frame: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Crop a (square) box from a frame, zero-padding outside it, resized to (size, size, 3)."""
    h, w = frame.shape[:2]
    x1, y1 = int(np.floor(box[0])), int(np.floor(box[1]))
    side = max(1, int(round(max(box[2] - box[0], box[3] - box[1]))))
    x2, y2 = x1 + side, y1 + side
    crop = np.zeros((side, side, frame.shape[2]), dtype=frame.dtype)
    sx1, sy1, sx2, sy2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if sx2 > sx1 and sy2 > sy1:
        crop[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = frame[sy1:sy2, sx1:sx2]
    return resize_square(crop, size)


# ----------------------------------------------------------------------------------------------
# MTCNN


def default_device() -> str:
    """"cuda" when a GPU is available, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.cache
def get_detector(device: str | None = None) -> MTCNN:
    """One MTCNN per process and device (its weights ship inside the facenet-pytorch wheel)."""
    from facenet_pytorch import MTCNN

    device = device or default_device()
    log.info("building MTCNN on %s", device)
    return MTCNN(keep_all=True, select_largest=True, post_process=False, device=device)


def _same_shape_batches(frames: Sequence[np.ndarray], batch_size: int) -> list[list[np.ndarray]]:
    """Consecutive batches of at most batch_size frames that share one shape (MTCNN needs that)."""
    batches: list[list[np.ndarray]] = []
    for frame in frames:
        if not batches or len(batches[-1]) == batch_size or batches[-1][0].shape != frame.shape:
            batches.append([])
        batches[-1].append(frame)
    return batches


def detect_batches(
    frames: Sequence[np.ndarray], settings: MtcnnSettings, detector: MTCNN
) -> Iterator[tuple[Sequence, Sequence, float]]:
    """MTCNN on same-shape batches downscaled to ``detect_max_side``: (boxes, probs, scale) per batch.

    ``boxes`` and ``probs`` are MTCNN's object arrays (one entry per frame, None where no face is
    found); divide a box by ``scale`` to get frame pixel coordinates.
    """
    for batch in _same_shape_batches(frames, settings.batch_size):
        h, w = batch[0].shape[:2]
        scale = min(1.0, settings.detect_max_side / max(h, w))
        if scale < 1.0:
            small = (max(1, round(w * scale)), max(1, round(h * scale)))
            batch = [cv2.resize(f, small, interpolation=cv2.INTER_AREA) for f in batch]
        boxes, probs = detector.detect(np.stack(batch))  # (B, H', W', 3) -> object arrays
        yield boxes, probs, scale


REDETECT_IOU = 0.85  # detect_every > 1: frames between two detections less similar than this are detected too


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes (..., 4) x1, y1, x2, y2 (NaN where either box is NaN)."""
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area - inter, 1e-9)


def _detect_all(frames: Sequence[np.ndarray], settings: MtcnnSettings, detector: MTCNN) -> np.ndarray:
    if not frames:
        return np.zeros((0, 4))
    out = [
        largest_boxes(boxes, probs, settings.min_prob) / scale
        for boxes, probs, scale in detect_batches(frames, settings, detector)
    ]
    return np.concatenate(out)


def sparse_indices(num_frames: int, every: int) -> list[int]:
    """Frames detected first when detecting every ``every``-th frame: 0, k, 2k, ... and the last."""
    picked = list(range(0, num_frames, max(1, every)))
    if picked and picked[-1] != num_frames - 1:
        picked.append(num_frames - 1)
    return picked


def detect_boxes(frames: Sequence[np.ndarray], settings: MtcnnSettings, device: str | None = None) -> np.ndarray:
    """Largest-face box per frame in frame pixel coordinates, (T, 4), NaN where none is found.

    With ``settings.detect_every`` k > 1, MTCNN runs on every k-th frame (and the last); the frames
    between two detections whose IoU is at least :data:`REDETECT_IOU` are left NaN (the track
    interpolates them), the others are detected as well.
    """
    detector = get_detector(device or default_device())
    every = max(1, int(settings.detect_every))
    if every == 1:
        return _detect_all(frames, settings, detector)
    out = np.full((len(frames), 4), np.nan)
    picked = sparse_indices(len(frames), every)
    out[picked] = _detect_all([frames[i] for i in picked], settings, detector)
    redo = []
    for a, b in zip(picked[:-1], picked[1:], strict=True):
        if b - a > 1 and not box_iou(out[a], out[b]) >= REDETECT_IOU:  # NaN (a miss) also re-detects
            redo.extend(range(a + 1, b))
    if redo:
        out[redo] = _detect_all([frames[i] for i in redo], settings, detector)
    return out


def face_track(boxes: np.ndarray, settings: MtcnnSettings) -> np.ndarray:
    """Detected boxes (NaN = missed) -> filled, smoothed, square crop boxes (T, 4)."""
    return square_boxes(smooth_boxes(fill_missing_boxes(boxes), settings.smooth_window), settings.margin)


def crop_faces_mtcnn(
    frames: Sequence[np.ndarray], size: int, settings: MtcnnSettings | None = None, device: str | None = None
) -> list[np.ndarray]:
    """MTCNN face crops of every frame, (size, size, 3) each; raises NoFaceError."""
    settings = settings or MtcnnSettings()
    track = face_track(detect_boxes(frames, settings, device), settings)
    return [crop_box(frame, box, size) for frame, box in zip(frames, track, strict=True)]


# ----------------------------------------------------------------------------------------------

STORE_SOURCE = "source"  # store_size value: keep the source's resolution


def check_store_size(store_size: int | str | None, face_mode: FaceMode) -> int | str | None:
    """Validate ``store_size`` (None, ``"source"`` or an int >= 16) for ``face_mode``; ValueError naming the fix."""
    if store_size is None:
        return None
    if isinstance(store_size, str) and store_size.strip().lower() == STORE_SOURCE:
        if FaceMode(face_mode) is FaceMode.MTCNN:
            raise ValueError(
                "store_size 'source' needs one frame size per clip, but MTCNN crops vary in size: give "
                "datasets.<name>.ingest.store_size an integer (e.g. 256) for a raw-video dataset"
            )
        return STORE_SOURCE
    try:
        value = int(store_size)
    except (TypeError, ValueError):
        raise ValueError(f"store_size must be 'source' or an integer >= 16, got {store_size!r}") from None
    if isinstance(store_size, bool) or value < 16 or str(value) != str(store_size).strip():
        raise ValueError(f"store_size must be 'source' or an integer >= 16, got {store_size!r}")
    return value


def _same_shape(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Frames resized (bilinear) to the first frame's shape where they differ from it (one size per clip)."""
    h, w = frames[0].shape[:2]
    return [np.ascontiguousarray(f) if f.shape[:2] == (h, w) else cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR)
            for f in frames]


def store_frames(
    frames: Sequence[np.ndarray],
    face_mode: FaceMode,
    store_size: int | str,
    mtcnn: MtcnnSettings | None = None,
    device: str | None = None,
) -> list[np.ndarray]:
    """``face_mode``'s crops at ``store_size`` (an int: square, as :func:`crop_frames`; ``"source"``: unresized).

    With ``"source"``, ``PRECROPPED`` keeps whole frames and ``FIXED_UPPER_CENTRE`` the patch at the
    frame's own resolution; a frame whose size differs from the clip's first frame is resized to it.
    """
    if not frames:
        raise ValueError("no frames to crop")
    mode = FaceMode(face_mode)
    size = check_store_size(store_size, mode)
    if size != STORE_SOURCE:
        return crop_frames(frames, mode, int(size), mtcnn, device)
    if mode is FaceMode.FIXED_UPPER_CENTRE:
        patches = []
        for f in frames:
            top, bottom, left, right = fixed_upper_centre_box(*f.shape[:2])
            patches.append(f[top:bottom, left:right])
        return _same_shape(patches)
    return _same_shape(frames)


def crop_frames(
    frames: Sequence[np.ndarray],
    face_mode: FaceMode,
    size: int,
    mtcnn: MtcnnSettings | None = None,
    device: str | None = None,
) -> list[np.ndarray]:
    """Apply ``face_mode`` to a clip's RGB frames; returns (size, size, 3) uint8 arrays."""
    if not frames:
        raise ValueError("no frames to crop")
    mode = FaceMode(face_mode)
    if mode is FaceMode.FIXED_UPPER_CENTRE:
        return [crop_fixed_upper_centre(f, size) for f in frames]
    if mode is FaceMode.PRECROPPED:
        return [resize_square(f, size) for f in frames]
    return crop_faces_mtcnn(frames, size, mtcnn, device)
