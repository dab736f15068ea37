"""One clip's frames: a labelled expression clip or a synthetic talking head.

Every random choice of a clip comes from its own ``numpy.random.Generator``, so a clip's frames
depend only on the seed, the clip's plan and the sources (not on which clips were made before).
"""

from __future__ import annotations

import numpy as np

from maedfer.demo.appearance import random_background, random_lighting
from maedfer.demo.expressions import (
    NUM_CLASSES,
    Controls,
    blink_controls,
    expression_controls,
    jaw_controls,
    neutral_controls,
)
from maedfer.demo.face_frame import FaceBase, prepare_base
from maedfer.demo.motion import blinks, random_envelope, random_pose, smooth_curve, speech
from maedfer.demo.warp import DFEW_FRAMING, VOX_FRAMING, Framing, face_grid, render_face, upsample

FPS = 25.0
INTENSITY = (0.9, 1.4)  # random per labelled clip, times the full-intensity controls
# Random per talking-head clip: speakers in VoxCeleb2 interviews smile, frown and look surprised while they talk,
# so the unlabelled pre-training clips carry the same facial actions at weak to full strength (generator 1.1;
# 1.0 had only faint ones, 0-0.5, and pre-training learnt little that the expressions need).
PRETRAIN_INTENSITY = (0.2, 1.0)


def _render(
    rng: np.random.Generator,
    base: FaceBase,
    framing: Framing,
    n: int,
    controls_at,
    textures: list[np.ndarray],
    background_p: float,
    lighting_strength: float,
    pose_kwargs: dict,
) -> list[np.ndarray]:
    """Frames of one synthetic clip; ``controls_at(t)`` gives frame t's expression controls."""
    pose = random_pose(rng, n, FPS, **pose_kwargs)
    lighting = random_lighting(rng, n, FPS, lighting_strength)
    background = random_background(rng, textures, n, framing.size, FPS) if rng.random() < background_p else None
    flip = bool(rng.random() < 0.5)
    frames = []
    for t in range(n):
        q = face_grid(framing, *pose.at(t))  # (h, h, 2)
        image = render_face(base, framing, q, controls_at(t))  # (S, S, 3) float32
        if background is not None:
            mask = upsample(background.head_mask(q), framing.size)[..., None]
            image = image * mask + background.frame(t, framing.size) * (1 - mask)
        out = lighting.apply(image, t, rng)  # (S, S, 3) uint8
        frames.append(np.ascontiguousarray(out[:, ::-1]) if flip else out)
    return frames


def expression_clip(
    rng: np.random.Generator, base: FaceBase, label: int, n: int, textures: list[np.ndarray]
) -> list[np.ndarray]:
    """A DFEW-style face-cropped clip (n frames, 224 x 224 RGB) of class ``label``.

    ``base`` is the identity's full-resolution still; the expression follows a random
    onset-apex-offset envelope at a random intensity, over small drift, blinks and (sometimes) speech.
    """
    if not 0 <= label < NUM_CLASSES:
        raise ValueError(f"label {label} outside 0..{NUM_CLASSES - 1}")
    base = prepare_base(base, DFEW_FRAMING.iod)
    envelope = random_envelope(rng, n)(n) * rng.uniform(INTENSITY[0], INTENSITY[1])
    expression = expression_controls(label, base.shape, rng)
    drift = neutral_controls(base.shape, rng, strength=0.4 if label == 2 else 0.15)
    drift_t = smooth_curve(rng, n, FPS, 1.0, freq=(0.3, 1.5))
    closure = blinks(rng, n, FPS)
    talk = speech(rng, n, FPS, rng.uniform(0.02, 0.07)) if rng.random() < 0.3 else np.zeros(n)

    def controls_at(t: int) -> Controls:
        return (
            expression.scaled(float(envelope[t]))
            + drift.scaled(float(drift_t[t]))
            + blink_controls(base.shape, float(closure[t]))
            + jaw_controls(float(talk[t]))
        )

    return _render(rng, base, DFEW_FRAMING, n, controls_at, textures, 0.5, 1.0, {})


def talking_head_clip(rng: np.random.Generator, base: FaceBase, n: int, textures: list[np.ndarray]) -> list[np.ndarray]:
    """A VoxCeleb2-style synthetic clip: speech-like mouth motion, head motion, an expression of random strength."""
    base = prepare_base(base, VOX_FRAMING.iod)
    label = int(rng.integers(NUM_CLASSES))
    envelope = random_envelope(rng, n)(n) * rng.uniform(*PRETRAIN_INTENSITY)
    expression = expression_controls(label, base.shape, rng)
    closure = blinks(rng, n, FPS)
    talk = speech(rng, n, FPS, rng.uniform(0.1, 0.25))

    def controls_at(t: int) -> Controls:
        return (
            expression.scaled(float(envelope[t]))
            + blink_controls(base.shape, float(closure[t]))
            + jaw_controls(float(talk[t]))
        )

    pose = {"roll_deg": 7.0, "shift": 8.0, "offset_shift": 6.0}
    return _render(rng, base, VOX_FRAMING, n, controls_at, textures, 0.3, 0.7, pose)
