"""What a prediction returns, and its JSON form (schema ``maedfer.predict/1``).

``PredictionResult.to_dict()``::

    {
      "schema": "maedfer.predict/1",
      "video": str,                     # the path as given
      "fps": float,                     # source frame rate (25.0 assumed when unknown: see notes)
      "frames": int, "width": int, "height": int, "duration_s": float,
      "checkpoint": str, "model": str,  # model file and architecture name
      "class_names": [str, ...],        # output order of every "probs" mapping
      "settings": {"frame_stride": int, "clip_len": int, "window_frames": int, "hop": int,
                   "detect_every": int, "all_faces": bool, "device": str},
      "tracks": [                       # one (the largest face) unless all_faces; largest first
        {"track_id": int, "first_frame": int, "last_frame": int,
         "box": {"mean": [x1, y1, x2, y2], "min_side": float, "max_side": float,
                 "detected_frames": int, "detection_frames": int},
         "windows": [{"start_frame": int, "end_frame": int, "start_s": float, "end_s": float,
                      "probs": {label: float}, "label": str}, ...],
         "overall": {"probs": {label: float}, "label": str},
         "notes": [str, ...]},
        ...],
      "overall": {"probs": {...}, "label": str},   # the first (largest) track's overall
      "notes": [str, ...],              # video-level notes (assumed fps, assumed class names, ...)
      "timing": {"decode_s": float, "detect_s": float, "model_s": float, "annotate_s": float,
                 "frames_per_s": float},           # frames / (decode + detect + model)
      "annotated": str | null           # path of the annotated copy, when asked for
    }

Frames are 0-based; ``end_frame`` is inclusive; ``end_s`` is ``(end_frame + 1) / fps``; boxes
are the square crop boxes (what the model sees) in pixels of the source frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCHEMA = "maedfer.predict/1"


def _probs(names: list[str], values: np.ndarray) -> dict[str, float]:
    return {name: round(float(p), 6) for name, p in zip(names, values, strict=True)}


@dataclass
class WindowPrediction:
    """Class probabilities of one window of a track."""
    start_frame: int
    end_frame: int  # inclusive
    start_s: float
    end_s: float
    probs: np.ndarray  # (C,) float
    label: str

    def to_dict(self, class_names: list[str]) -> dict[str, Any]:
        """The window as JSON-ready values, probabilities keyed by class name."""
        return {
            "start_frame": int(self.start_frame),
            "end_frame": int(self.end_frame),
            "start_s": round(float(self.start_s), 4),
            "end_s": round(float(self.end_s), 4),
            "probs": _probs(class_names, self.probs),
            "label": self.label,
        }


@dataclass
class TrackPrediction:
    """The windows and overall prediction of one face track."""
    track_id: int
    first_frame: int
    last_frame: int
    crop_boxes: np.ndarray = field(repr=False)  # (last - first + 1, 4) per-frame square crop boxes
    detected_frames: int
    detection_frames: int
    windows: list[WindowPrediction]
    probs: np.ndarray  # (C,) time-weighted over the windows
    label: str
    notes: list[str] = field(default_factory=list)

    def box_summary(self) -> dict[str, Any]:
        """Mean crop box and smallest / largest side of the track."""
        sides = self.crop_boxes[:, 2] - self.crop_boxes[:, 0]
        return {
            "mean": [round(float(v), 1) for v in self.crop_boxes.mean(axis=0)],
            "min_side": round(float(sides.min()), 1),
            "max_side": round(float(sides.max()), 1),
            "detected_frames": int(self.detected_frames),
            "detection_frames": int(self.detection_frames),
        }

    def to_dict(self, class_names: list[str]) -> dict[str, Any]:
        """The track as JSON-ready values."""
        return {
            "track_id": int(self.track_id),
            "first_frame": int(self.first_frame),
            "last_frame": int(self.last_frame),
            "box": self.box_summary(),
            "windows": [w.to_dict(class_names) for w in self.windows],
            "overall": {"probs": _probs(class_names, self.probs), "label": self.label},
            "notes": list(self.notes),
        }


@dataclass
class Timing:
    """Seconds spent per stage of a prediction and the frames processed."""
    decode_s: float = 0.0
    detect_s: float = 0.0
    model_s: float = 0.0
    annotate_s: float = 0.0
    frames: int = 0

    @property
    def frames_per_s(self) -> float:
        """Frames per second of decoding, detection and model time together."""
        busy = self.decode_s + self.detect_s + self.model_s
        return self.frames / busy if busy > 0 else 0.0

    def to_dict(self) -> dict[str, float]:
        """The timings as JSON-ready values."""
        return {
            "decode_s": round(self.decode_s, 3),
            "detect_s": round(self.detect_s, 3),
            "model_s": round(self.model_s, 3),
            "annotate_s": round(self.annotate_s, 3),
            "frames_per_s": round(self.frames_per_s, 2),
        }


@dataclass
class PredictionResult:
    """Per-window and overall class probabilities of every face track of one video."""

    video: str
    fps: float
    frames: int
    width: int
    height: int
    checkpoint: str
    model: str
    class_names: list[str]
    settings: dict[str, Any]
    tracks: list[TrackPrediction]
    notes: list[str] = field(default_factory=list)
    timing: Timing = field(default_factory=Timing)
    annotated: str | None = None

    @property
    def duration_s(self) -> float:
        """Length of the video in seconds."""
        return self.frames / self.fps if self.fps > 0 else 0.0

    @property
    def label(self) -> str:
        """Overall label of the first (largest) face."""
        return self.tracks[0].label

    @property
    def probs(self) -> dict[str, float]:
        """Overall probabilities of the first (largest) face, by class name."""
        return _probs(self.class_names, self.tracks[0].probs)

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready document."""
        return {
            "schema": SCHEMA,
            "video": self.video,
            "fps": round(float(self.fps), 6),
            "frames": int(self.frames),
            "width": int(self.width),
            "height": int(self.height),
            "duration_s": round(self.duration_s, 4),
            "checkpoint": self.checkpoint,
            "model": self.model,
            "class_names": list(self.class_names),
            "settings": dict(self.settings),
            "tracks": [t.to_dict(self.class_names) for t in self.tracks],
            "overall": {"probs": self.probs, "label": self.label},
            "notes": list(self.notes),
            "timing": self.timing.to_dict(),
            "annotated": self.annotated,
        }
