"""Face tracks of a video: MTCNN on every ``detect_every``-th frame, then the ingest stage's box handling.

The default (largest face) follows :mod:`maedfer.data.faces` exactly: per detected frame the
largest face with probability >= ``min_prob`` (:func:`~maedfer.data.faces.detect_boxes`), frames
in between take their box by linear interpolation, then
:func:`~maedfer.data.faces.face_track` smooths the box and squares it with the ingest margin. With
``detect_every=1`` the crop boxes are the ones the ingest stage uses for ``FaceMode.MTCNN``.

Every face (``all_faces``): all detections of each detected frame are linked into tracks
greedily by box overlap (IoU >= ``iou_threshold`` with the track's last box, best overlap first; a
track ends when it is not seen for ``max_gap`` frames); tracks seen on fewer than ``min_hits``
detected frames are dropped as spurious. Each track spans its first to last detection and goes
through the same :func:`~maedfer.data.faces.face_track`. Tracks are numbered by mean face area,
largest first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from maedfer.data.faces import (
    MtcnnSettings,
    NoFaceError,
    detect_batches,
    detect_boxes,
    face_track,
    get_detector,
)

log = logging.getLogger(__name__)

DETECT_CHUNK = 64  # frames per progress-bar step (MTCNN batches within a chunk as the ingest stage does)


@dataclass
class FaceTrack:
    """One face over frames ``first``..``last`` (inclusive)."""

    track_id: int
    first: int
    last: int
    detected: np.ndarray  # (last - first + 1, 4) detected boxes x1, y1, x2, y2; NaN where none (or not run)
    crop_boxes: np.ndarray  # (last - first + 1, 4) square crop boxes after filling and smoothing
    detection_frames: int  # frames of the span on which the detector ran

    @property
    def hits(self) -> int:
        """Frames of the span where this face was detected."""
        return int((~np.isnan(self.detected).any(axis=1)).sum())

    def crop_box(self, frame: int) -> np.ndarray:
        """The square crop box (4,) of frame ``frame``."""
        return self.crop_boxes[frame - self.first]

    def covers(self, frame: int) -> bool:
        """Whether the track spans frame ``frame``."""
        return self.first <= frame <= self.last


def detection_frames(num_frames: int, every: int) -> np.ndarray:
    """Frames the detector runs on: every ``every``-th from 0, plus the last frame."""
    if every < 1:
        raise ValueError(f"detect_every must be at least 1, got {every}")
    idx = list(range(0, num_frames, every))
    if idx[-1] != num_frames - 1:
        idx.append(num_frames - 1)
    return np.asarray(idx, dtype=np.int64)


def _chunks(indices: np.ndarray, desc: str) -> tqdm:
    return tqdm(
        [indices[i : i + DETECT_CHUNK] for i in range(0, len(indices), DETECT_CHUNK)],
        desc=desc,
        unit="chunk",
        leave=False,
        disable=None,
    )


def largest_face_track(
    frames: Sequence[np.ndarray], settings: MtcnnSettings, every: int = 1, device: str | None = None
) -> FaceTrack:
    """The largest face over the whole video (the ingest stage's rule); raises NoFaceError."""
    n = len(frames)
    where = detection_frames(n, every)
    boxes = np.full((n, 4), np.nan)
    for chunk in _chunks(where, "detect faces"):
        boxes[chunk] = detect_boxes([frames[i] for i in chunk], settings, device)  # (len(chunk), 4)
    return FaceTrack(0, 0, n - 1, boxes, face_track(boxes, settings), len(where))


def detect_all_boxes(
    frames: Sequence[np.ndarray], settings: MtcnnSettings, device: str | None = None
) -> list[np.ndarray]:
    """Every face with probability >= min_prob per frame, (k, 4) boxes in frame pixels (k may be 0).

    Batching and the detection downscale are those of :func:`maedfer.data.faces.detect_boxes`.
    """
    detector = get_detector(device)
    out: list[np.ndarray] = []
    for boxes, probs, scale in detect_batches(frames, settings, detector):
        for frame_boxes, frame_probs in zip(boxes, probs, strict=True):
            if frame_boxes is None:
                out.append(np.zeros((0, 4)))
                continue
            b = np.asarray(frame_boxes, dtype=float).reshape(-1, 4)
            p = np.asarray(frame_probs, dtype=float).reshape(-1)
            out.append(b[p >= settings.min_prob] / scale)
    return out


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes a (N, 4) and b (M, 4) -> (N, M)."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def link_detections(
    frame_ids: Sequence[int], detections: Sequence[np.ndarray], iou_threshold: float = 0.3, max_gap: int = 30
) -> list[dict[int, np.ndarray]]:
    """Greedy IoU linking of per-frame detections into tracks ({frame: box (4,)} each), in order of birth."""
    tracks: list[dict[int, np.ndarray]] = []
    active: list[int] = []  # indices into tracks
    for frame, boxes in zip(frame_ids, detections, strict=True):
        active = [k for k in active if frame - max(tracks[k]) <= max_gap]
        unmatched = set(range(len(boxes)))
        if active and len(boxes):
            last = np.stack([tracks[k][max(tracks[k])] for k in active])  # (A, 4)
            overlap = iou(last, boxes)  # (A, B)
            taken: set[int] = set()
            for flat in np.argsort(-overlap, axis=None, kind="stable"):
                a, b = np.unravel_index(flat, overlap.shape)
                if overlap[a, b] < iou_threshold:
                    break
                if a in taken or b not in unmatched:
                    continue
                tracks[active[a]][int(frame)] = boxes[b]
                taken.add(int(a))
                unmatched.discard(int(b))
        for b in sorted(unmatched):
            tracks.append({int(frame): boxes[b]})
            active.append(len(tracks) - 1)
    return tracks


def all_face_tracks(
    frames: Sequence[np.ndarray],
    settings: MtcnnSettings,
    every: int = 1,
    device: str | None = None,
    fps: float = 25.0,
    iou_threshold: float = 0.3,
) -> list[FaceTrack]:
    """Every face's track, largest first; raises NoFaceError when no track survives."""
    n = len(frames)
    where = detection_frames(n, every)
    detections: list[np.ndarray] = []
    for chunk in _chunks(where, "detect faces"):
        detections += detect_all_boxes([frames[i] for i in chunk], settings, device)
    max_gap = max(2 * every, int(round(fps)))  # a face may be missed for up to a second
    linked = link_detections(where.tolist(), detections, iou_threshold, max_gap)
    min_hits = min(3, len(where))
    linked = [t for t in linked if len(t) >= min_hits]
    if not linked:
        raise NoFaceError("no face detected in any frame")
    area = [np.mean([(b[2] - b[0]) * (b[3] - b[1]) for b in t.values()]) for t in linked]
    out = []
    for track_id, k in enumerate(np.argsort(-np.asarray(area), kind="stable")):
        found = linked[int(k)]
        first, last = min(found), max(found)
        boxes = np.full((last - first + 1, 4), np.nan)
        for frame, box in found.items():
            boxes[frame - first] = box
        ran = int(((where >= first) & (where <= last)).sum())
        out.append(FaceTrack(track_id, first, last, boxes, face_track(boxes, settings), ran))
    log.info("%d face track(s) from %d detected frames", len(out), len(where))
    return out
