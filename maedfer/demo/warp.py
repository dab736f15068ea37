"""Rendering one face frame with a single remap.

Rendering one face frame: output pixels -> face coordinates (head pose, framing) -> expression
displacement -> source pixels, one ``cv2.remap``; then the open-mouth cavity is painted.

Fields are smooth, so they are evaluated on a half-resolution grid and the maps upsampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from maedfer.demo.expressions import Controls
from maedfer.demo.face_frame import FaceBase, FaceShape


@dataclass(frozen=True)
class Framing:
    """Where the face sits in the output: eye midpoint (pixels) and inter-ocular distance (pixels)."""

    size: int
    eyes_x: float
    eyes_y: float
    iod: float


# DFEW's released crops: the face fills most of the 224 x 224 frame.
DFEW_FRAMING = Framing(size=224, eyes_x=111.5, eyes_y=84.0, iod=68.0)
# VoxCeleb2: the face in the upper centre, inside rows 0-159 and columns 32-191.
VOX_FRAMING = Framing(size=224, eyes_x=111.5, eyes_y=68.0, iod=44.0)

GRID_STEP = 2  # fields on a (size / 2)^2 grid


def face_grid(framing: Framing, roll: float, scale: float, shift_x: float, shift_y: float) -> np.ndarray:
    """Face coordinates of the half-resolution output grid, (h, h, 2) with h = size / GRID_STEP.

    The head is drawn rotated by ``roll``, scaled by ``scale`` and shifted by (shift_x, shift_y) px.
    """
    h = framing.size // GRID_STEP
    c = (np.arange(h, dtype=np.float32) + 0.5) * GRID_STEP - 0.5  # half-res pixel centres in output pixels
    px = c[None, :] - (framing.eyes_x + shift_x)
    py = c[:, None] - (framing.eyes_y + shift_y)
    k = 1.0 / (framing.iod * scale)
    cos, sin = np.cos(roll), np.sin(roll)
    qx = (cos * px + sin * py) * k
    qy = (-sin * px + cos * py) * k
    return np.stack(np.broadcast_arrays(qx, qy), axis=-1).astype(np.float32)  # (h, h, 2)


def _gauss(q: np.ndarray, centre: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Gaussian weights (K, h, w) of K primitives."""
    dx = (q[None, ..., 0] - centre[:, 0, None, None]) / sigma[:, 0, None, None]
    dy = (q[None, ..., 1] - centre[:, 1, None, None]) / sigma[:, 1, None, None]
    return np.exp(-0.5 * (dx * dx + dy * dy))


UPPER_LIP_LIFT = 0.2  # the upper lip rises by this fraction of the jaw drop


def _across_mouth(q: np.ndarray, shape: FaceShape) -> np.ndarray:
    """1 across the mouth's width, falling off smoothly beyond its corners, (h, w)."""
    plateau = 0.8 * shape.mouth_half_width
    dx = np.maximum(np.abs(q[..., 0] - shape.mouth_centre[0]) - plateau, 0) / 0.35
    return np.exp(-0.5 * dx * dx)


def _jaw_field(q: np.ndarray, shape: FaceShape, jaw: float) -> np.ndarray:
    """Vertical backward displacement (h, w) of a jaw drop of ``jaw`` IODs.

    Below the lips the weight ramps from 0 to 1 over ``jaw`` (the backward map's vertical slope
    stays >= 0: no fold) and returns to 0 under the chin; above them the upper lip rises by
    ``UPPER_LIP_LIFT * jaw``. The strip between the lips is covered by the painted cavity.
    """
    across = _across_mouth(q, shape)
    y = q[..., 1] - shape.mouth_centre[1]
    ramp = np.clip(y / max(jaw, 1e-3), 0, 1)
    chin = max(0.5, jaw + 0.05)
    f = np.clip((y - chin) / 0.7, 0, 1)
    lower = np.minimum(ramp, 1 - f * f * (3 - 2 * f))
    above = np.minimum(y, 0) / 0.15
    upper = np.exp(-0.5 * above * above) * (y < 0)
    return across * (UPPER_LIP_LIFT * jaw * upper - jaw * lower)


def backward_field(q: np.ndarray, controls: Controls, shape: FaceShape) -> np.ndarray:
    """Displacement B (h, w, 2): the output at face point q shows the source face at q + B(q)."""
    field = np.zeros_like(q)
    if len(controls.move_centre):
        w = _gauss(q, controls.move_centre, controls.move_sigma)  # (K, h, w)
        field -= np.einsum("khw,kc->hwc", w, controls.move_shift.astype(np.float32))
    if len(controls.squash_centre):
        w = _gauss(q, controls.squash_centre, controls.squash_sigma)  # (K, h, w)
        dy = q[None, ..., 1] - controls.squash_centre[:, 1, None, None]
        field[..., 1] += np.einsum("khw,k->hw", w * dy, controls.squash_amount.astype(np.float32))
    if controls.jaw > 1e-3:
        field[..., 1] += _jaw_field(q, shape, controls.jaw)
    return field


def mouth_cavity(q: np.ndarray, controls: Controls, shape: FaceShape) -> tuple[np.ndarray, np.ndarray]:
    """Alpha (h, w) and colour (h, w, 3) float32 of the open mouth, drawn between the lips."""
    mouth = shape.mouth_centre
    half = shape.mouth_half_width * (0.95 - 0.3 * controls.pucker)
    u = (q[..., 0] - mouth[0]) / half
    taper = np.sqrt(np.clip(1 - u * u, 0, 1)) ** (0.6 + 0.6 * controls.pucker)
    height = np.maximum((1 + UPPER_LIP_LIFT) * controls.jaw * taper, 1e-4)
    top = mouth[1] - UPPER_LIP_LIFT * controls.jaw * taper
    v = (q[..., 1] - top) / height  # 0 at the upper lip, 1 at the lower lip
    edge = 0.02
    inside_v = np.clip(np.minimum(v, 1 - v) * height / edge, 0, 1)
    inside_u = np.clip((1 - np.abs(u)) * half / edge, 0, 1)
    alpha = (inside_v * inside_u * (controls.jaw * taper > 0.005)).astype(np.float32)
    depth = 1 - 0.6 * np.clip(1 - np.abs(2 * v - 1), 0, 1) * np.clip(1 - np.abs(u), 0, 1)
    colour = np.empty(q.shape[:2] + (3,), np.float32)
    for c, value in enumerate((75.0, 32.0, 36.0)):
        colour[..., c] = value * depth
    if controls.teeth > 0:
        teeth_h = min(0.07, 0.45 * controls.jaw)
        teeth = (v * height < teeth_h) & (np.abs(u) < 0.75)
        shade = 0.75 + 0.25 * np.clip(1 - np.abs(u) / 0.75, 0, 1)
        for c, value in enumerate((222.0, 214.0, 200.0)):
            colour[..., c] = np.where(
                teeth, value * shade * controls.teeth + colour[..., c] * (1 - controls.teeth), colour[..., c]
            )
    return alpha, colour


def upsample(a: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a square field to ``size`` x ``size``."""
    return cv2.resize(a, (size, size), interpolation=cv2.INTER_LINEAR)


def render_face(base: FaceBase, framing: Framing, q: np.ndarray, controls: Controls) -> np.ndarray:
    """The face ``base`` warped by ``controls`` on the output grid ``q``: float32 (size, size, 3) RGB."""
    src = q + backward_field(q, controls, base.shape)  # (h, h, 2) face coordinates
    pix = base.frame.to_image(src).astype(np.float32)  # (h, h, 2) source pixels
    maps = upsample(pix, framing.size)  # (size, size, 2)
    out = cv2.remap(base.image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = out.astype(np.float32)
    if controls.jaw > 0.01:
        alpha, colour = mouth_cavity(q, controls, base.shape)
        alpha = upsample(alpha, framing.size)[..., None]
        out = out * (1 - alpha) + upsample(colour, framing.size) * alpha
    return out  # (size, size, 3)
