"""The seven DFEW expressions as displacement controls in face coordinates.

An expression is a set of :class:`Controls` at full intensity, scaled per frame by the clip's
onset-apex-offset envelope. Three primitives, all smooth (Gaussian fall-off) and given as
*backward* maps (the output at point q shows the source at q + B(q)):

* move: the skin around ``centre`` moves by ``shift`` (Gaussian weight, radii ``sigma``);
* squash: vertical scaling around ``centre``: amount > 0 narrows (an eye closing, a lid
  tightening), amount < 0 widens (eyes opening wide);
* jaw: the lower lip and chin drop by ``jaw`` IODs; the mouth cavity it opens is painted by
  :mod:`maedfer.demo.warp` (dark, with upper teeth when ``teeth`` > 0).

Action units (FACS) behind each class: happy AU6+12 (cheeks and mouth corners up, lower lids
up, sometimes teeth); sad AU1+4+15+17 (inner brows up, corners down, chin up); angry AU4+5+7+23
(brows down and together, lids tight, lips pressed); surprise AU1+2+5+26 (brows up, eyes wide,
jaw dropped, an O mouth); disgust AU9+10+4 (nose wrinkle, upper lip raised, brows lowered);
fear AU1+2+4+5+20+25 (brows up and together, eyes wide, lips stretched, mouth open with teeth);
neutral: only small random motion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from maedfer.demo.face_frame import FaceShape

NUM_CLASSES = 7
HAPPY, SAD, NEUTRAL, ANGRY, SURPRISE, DISGUST, FEAR = range(NUM_CLASSES)


@dataclass(frozen=True)
class Controls:
    """Displacement controls; arrays have one row per primitive."""

    move_centre: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    move_sigma: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    move_shift: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    squash_centre: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    squash_sigma: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    squash_amount: np.ndarray = field(default_factory=lambda: np.zeros(0))
    jaw: float = 0.0  # IODs
    teeth: float = 0.0  # 0..1 visibility of the upper teeth when the mouth is open
    pucker: float = 0.0  # 0..1: narrower, rounder mouth opening (surprise)

    def scaled(self, k: float) -> Controls:
        """Every displacement times k (the teeth/pucker look is kept)."""
        return Controls(
            self.move_centre, self.move_sigma, self.move_shift * k,
            self.squash_centre, self.squash_sigma, self.squash_amount * k,
            self.jaw * k, self.teeth, self.pucker,
        )  # fmt: skip

    def __add__(self, other: Controls) -> Controls:
        return Controls(
            np.concatenate([self.move_centre, other.move_centre]),
            np.concatenate([self.move_sigma, other.move_sigma]),
            np.concatenate([self.move_shift, other.move_shift]),
            np.concatenate([self.squash_centre, other.squash_centre]),
            np.concatenate([self.squash_sigma, other.squash_sigma]),
            np.concatenate([self.squash_amount, other.squash_amount]),
            self.jaw + other.jaw,
            max(self.teeth, other.teeth),
            max(self.pucker, other.pucker),
        )


class _Builder:
    """Collects primitives with per-clip random jitter of their strength."""

    def __init__(self, rng: np.random.Generator, jitter: float = 0.2) -> None:
        self.rng, self.jitter = rng, jitter
        self.moves: list[tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = []
        self.squashes: list[tuple[tuple[float, float], tuple[float, float], float]] = []

    def _k(self) -> float:
        return float(self.rng.uniform(1 - self.jitter, 1 + self.jitter))

    def move(self, centre, sigma, shift) -> None:
        k = self._k()
        self.moves.append((tuple(centre), tuple(sigma), (shift[0] * k, shift[1] * k)))

    def squash(self, centre, sigma, amount: float) -> None:
        self.squashes.append((tuple(centre), tuple(sigma), amount * self._k()))

    def build(self, jaw: float = 0.0, teeth: float = 0.0, pucker: float = 0.0) -> Controls:
        m = np.asarray([[*c, *s, *d] for c, s, d in self.moves], dtype=float).reshape(-1, 6)
        s = np.asarray([[*c, *g, a] for c, g, a in self.squashes], dtype=float).reshape(-1, 5)
        return Controls(m[:, 0:2], m[:, 2:4], m[:, 4:6], s[:, 0:2], s[:, 2:4], s[:, 4], jaw * self._k(), teeth, pucker)


@dataclass(frozen=True)
class Points:
    """Named face points (face coordinates) derived from the five landmarks."""

    eye: tuple[np.ndarray, np.ndarray]
    inner_brow: tuple[np.ndarray, np.ndarray]
    mid_brow: tuple[np.ndarray, np.ndarray]
    outer_brow: tuple[np.ndarray, np.ndarray]
    corner: tuple[np.ndarray, np.ndarray]
    cheek: tuple[np.ndarray, np.ndarray]
    nose_wing: tuple[np.ndarray, np.ndarray]
    nose: np.ndarray
    glabella: np.ndarray
    upper_lip: np.ndarray
    lower_lip: np.ndarray
    chin: np.ndarray

    @classmethod
    def of(cls, shape: FaceShape) -> Points:
        """The control points of a face with landmarks ``shape``."""
        nose = np.asarray(shape.nose, dtype=float)
        corner = (np.asarray(shape.mouth_left, dtype=float), np.asarray(shape.mouth_right, dtype=float))
        mouth = (corner[0] + corner[1]) / 2
        pair = lambda x, y: (np.array([-x, y]), np.array([x, y]))  # noqa: E731
        cheek_y = (nose[1] + mouth[1]) / 2 - 0.05
        return cls(
            eye=pair(0.5, 0.0),
            inner_brow=pair(0.22, -0.33),
            mid_brow=pair(0.5, -0.38),
            outer_brow=pair(0.78, -0.3),
            corner=corner,
            cheek=pair(0.52, cheek_y),
            nose_wing=(nose + [-0.2, -0.05], nose + [0.2, -0.05]),
            nose=nose,
            glabella=np.array([nose[0] * 0.3, 0.3 * nose[1]]),
            upper_lip=np.array([mouth[0], nose[1] + 0.55 * (mouth[1] - nose[1])]),
            lower_lip=mouth + [0.0, 0.12],
            chin=mouth + [0.0, 0.5],
        )


SIDES = (0, 1)  # index into the (left, right) pairs; sign = -1 for left


def _sign(side: int) -> float:
    return -1.0 if side == 0 else 1.0


def expression_controls(label: int, shape: FaceShape, rng: np.random.Generator) -> Controls:
    """Full-intensity controls of class ``label`` (DFEW order) for a face, with per-clip jitter."""
    p = Points.of(shape)
    b = _Builder(rng)
    if label == HAPPY:
        for s in SIDES:
            g = _sign(s)
            b.move(p.corner[s], (0.2, 0.2), (g * 0.09, -0.14))
            b.move(p.cheek[s], (0.25, 0.2), (0.0, -0.07))
            b.squash(p.eye[s] + [0.0, 0.07], (0.25, 0.1), 0.45)
        teeth = float(rng.random() < 0.6)
        return b.build(jaw=rng.uniform(0.05, 0.1) * teeth, teeth=teeth)
    if label == SAD:
        for s in SIDES:
            g = _sign(s)
            b.move(p.inner_brow[s], (0.14, 0.13), (-g * 0.03, -0.12))
            b.move(p.outer_brow[s], (0.15, 0.12), (0.0, 0.05))
            b.move(p.corner[s], (0.18, 0.18), (-g * 0.02, 0.16))
            b.squash(p.eye[s] + [0.0, -0.05], (0.25, 0.1), 0.25)
        b.move(p.chin, (0.3, 0.2), (0.0, -0.06))
        b.move(p.lower_lip, (0.2, 0.1), (0.0, -0.04))
        return b.build()
    if label == ANGRY:
        for s in SIDES:
            g = _sign(s)
            b.move(p.inner_brow[s], (0.16, 0.15), (-g * 0.08, 0.15))
            b.move(p.mid_brow[s], (0.2, 0.14), (-g * 0.03, 0.09))
            b.squash(p.eye[s], (0.25, 0.12), 0.45)
            b.move(p.corner[s], (0.15, 0.15), (-g * 0.06, 0.01))
            b.move(p.nose_wing[s], (0.1, 0.1), (g * 0.03, 0.0))
        b.move(p.upper_lip, (0.2, 0.1), (0.0, 0.03))
        b.move(p.lower_lip, (0.2, 0.1), (0.0, -0.06))
        return b.build()
    if label == SURPRISE:
        for s in SIDES:
            g = _sign(s)
            b.move(p.mid_brow[s], (0.32, 0.2), (0.0, -0.16))
            b.move(p.inner_brow[s], (0.14, 0.12), (0.0, -0.05))
            b.squash(p.eye[s], (0.24, 0.13), -0.4)
            b.move(p.corner[s], (0.15, 0.15), (-g * 0.06, 0.02))
        return b.build(jaw=rng.uniform(0.28, 0.38), teeth=float(rng.random() < 0.3), pucker=1.0)
    if label == DISGUST:
        sneer = int(rng.integers(2))
        for s in SIDES:
            b.move(p.nose_wing[s], (0.12, 0.12), (0.0, -0.1))
            b.move(p.mid_brow[s], (0.25, 0.15), (0.0, 0.06))
            b.squash(p.eye[s], (0.25, 0.12), 0.25)
            b.move(p.corner[s], (0.16, 0.16), (0.0, -0.07 if s == sneer else 0.07))
        b.move(p.upper_lip, (0.22, 0.12), (0.0, -0.12))
        b.squash(p.glabella, (0.2, 0.15), 0.4)
        teeth = float(rng.random() < 0.7)
        return b.build(jaw=0.06 * teeth, teeth=teeth)
    if label == FEAR:
        for s in SIDES:
            g = _sign(s)
            b.move(p.inner_brow[s], (0.14, 0.12), (-g * 0.05, -0.12))
            b.move(p.outer_brow[s], (0.15, 0.12), (0.0, -0.05))
            b.squash(p.eye[s], (0.24, 0.13), -0.32)
            b.move(p.corner[s], (0.18, 0.18), (g * 0.12, 0.05))
        return b.build(jaw=rng.uniform(0.12, 0.2), teeth=1.0)
    if label == NEUTRAL:
        return neutral_controls(shape, rng)
    raise ValueError(f"label {label} outside 0..{NUM_CLASSES - 1}")


def neutral_controls(shape: FaceShape, rng: np.random.Generator, strength: float = 0.15) -> Controls:
    """Small random motion: a little of every region, far weaker than any expression."""
    p = Points.of(shape)
    b = _Builder(rng, jitter=0.0)
    small = lambda: rng.uniform(-1, 1, size=2) * strength * 0.1  # noqa: E731
    for s in SIDES:
        b.move(p.mid_brow[s], (0.25, 0.15), small())
        b.move(p.corner[s], (0.18, 0.18), small())
    b.move(p.lower_lip, (0.2, 0.1), small())
    return b.build()


def blink_controls(shape: FaceShape, closure: float) -> Controls:
    """Both eyes closing by ``closure`` in [0, 1] (a vertical squash, at most 2.6 x)."""
    p = Points.of(shape)
    centre = np.stack(p.eye)
    return Controls(
        squash_centre=centre,
        squash_sigma=np.array([[0.22, 0.09], [0.22, 0.09]]),
        squash_amount=np.full(2, 1.6 * closure),
    )


def jaw_controls(jaw: float) -> Controls:
    """Only a jaw opening (speech), closed lips apart by ``jaw`` IODs."""
    return Controls(jaw=jaw)
