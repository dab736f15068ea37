"""Face coordinates: a similarity frame fixed to the eyes, and the landmarks expressed in it.

Face coordinates put the midpoint of the eyes at the origin, the x axis from the left eye (as
seen in the image) to the right eye and the y axis downwards; one unit is the inter-ocular
distance (IOD). The eyes are therefore at (-0.5, 0) and (0.5, 0); a frontal face has its nose
tip near (0, 0.6) and its mouth corners near (+-0.4, 1.05).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class FaceFrame:
    """Similarity transform between face coordinates and image pixel coordinates (x, y)."""

    origin: tuple[float, float]  # eye midpoint, image pixels
    axis: tuple[float, float]  # unit vector from the left eye to the right eye
    iod: float  # inter-ocular distance, pixels

    @classmethod
    def from_eyes(cls, left: np.ndarray, right: np.ndarray) -> FaceFrame:
        """The face frame whose eyes are the landmarks ``left`` and ``right``."""
        left, right = np.asarray(left, dtype=float), np.asarray(right, dtype=float)
        delta = right - left
        iod = float(np.hypot(*delta))
        if iod < 1e-6:
            raise ValueError("the two eye landmarks coincide")
        origin = (left + right) / 2
        return cls((float(origin[0]), float(origin[1])), (float(delta[0] / iod), float(delta[1] / iod)), iod)

    @property
    def angle(self) -> float:
        """Roll of the eye line, radians (0 = horizontal)."""
        return float(np.arctan2(self.axis[1], self.axis[0]))

    def to_image(self, q: np.ndarray) -> np.ndarray:
        """Face coordinates (..., 2) -> image pixels (..., 2)."""
        ux, uy = self.axis
        x = self.origin[0] + self.iod * (q[..., 0] * ux - q[..., 1] * uy)
        y = self.origin[1] + self.iod * (q[..., 0] * uy + q[..., 1] * ux)
        return np.stack([x, y], axis=-1)

    def to_face(self, p: np.ndarray) -> np.ndarray:
        """Image pixels (..., 2) -> face coordinates (..., 2)."""
        ux, uy = self.axis
        dx = (np.asarray(p, dtype=float)[..., 0] - self.origin[0]) / self.iod
        dy = (np.asarray(p, dtype=float)[..., 1] - self.origin[1]) / self.iod
        return np.stack([dx * ux + dy * uy, -dx * uy + dy * ux], axis=-1)

    def cropped_resized(self, left: int, top: int, scale: float) -> FaceFrame:
        """The same frame in an image cropped at (left, top) and then resized by ``scale``."""
        ox = (self.origin[0] - left + 0.5) * scale - 0.5
        oy = (self.origin[1] - top + 0.5) * scale - 0.5
        return FaceFrame((ox, oy), self.axis, self.iod * scale)


@dataclass(frozen=True)
class FaceShape:
    """Nose tip and mouth corners in face coordinates (the eyes are at (-+0.5, 0) by definition)."""

    nose: tuple[float, float]
    mouth_left: tuple[float, float]
    mouth_right: tuple[float, float]

    @classmethod
    def from_landmarks(cls, frame: FaceFrame, landmarks: np.ndarray) -> FaceShape:
        """From MTCNN's five landmarks (left eye, right eye, nose, left and right mouth corner), pixels."""
        q = frame.to_face(np.asarray(landmarks, dtype=float).reshape(5, 2))
        return cls(tuple(q[2]), tuple(q[3]), tuple(q[4]))  # type: ignore[arg-type]

    @property
    def mouth_centre(self) -> np.ndarray:
        """Midpoint of the mouth corners."""
        return (np.asarray(self.mouth_left) + np.asarray(self.mouth_right)) / 2

    @property
    def mouth_half_width(self) -> float:
        """Half the distance between the mouth corners."""
        return float(np.hypot(*(np.asarray(self.mouth_right) - np.asarray(self.mouth_left))) / 2)


# An average frontal face (landmark geometry of a typical face, in face coordinates).
AVERAGE_SHAPE = FaceShape(nose=(0.0, 0.62), mouth_left=(-0.38, 1.05), mouth_right=(0.38, 1.05))


@dataclass(frozen=True)
class FaceBase:
    """One still face to animate: an RGB image with its face frame and landmarks."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    frame: FaceFrame
    shape: FaceShape


def prepare_base(base: FaceBase, target_iod: float, extent: float = 5.0, oversample: float = 1.2) -> FaceBase:
    """Crop and shrink a face base to about the resolution it is rendered at.

    Crop ``base`` to ``extent`` IODs around the eyes and shrink it so its IOD is about
    ``oversample * target_iod`` (never enlarged): rendering at ``target_iod`` then samples a
    source of similar resolution (little aliasing) and touches a small image.
    """
    h, w = base.image.shape[:2]
    ox, oy = base.frame.origin
    reach = extent * base.frame.iod
    left, top = max(0, int(np.floor(ox - reach))), max(0, int(np.floor(oy - reach)))
    right, bottom = min(w, int(np.ceil(ox + reach)) + 1), min(h, int(np.ceil(oy + reach)) + 1)
    crop = base.image[top:bottom, left:right]
    scale = min(1.0, oversample * target_iod / base.frame.iod)
    if scale < 1.0:
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        scale_x, scale_y = size[0] / crop.shape[1], size[1] / crop.shape[0]
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        scale = (scale_x + scale_y) / 2
    return FaceBase(np.ascontiguousarray(crop), base.frame.cropped_resized(left, top, scale), base.shape)
