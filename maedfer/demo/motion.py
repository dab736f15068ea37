"""Time courses: smooth random curves, onset-apex-offset envelopes, blinks, speech, head pose."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def smoothstep(x: np.ndarray | float) -> np.ndarray:
    """Cubic ease 3x^2 - 2x^3 of ``x`` clipped to [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def smooth_curve(
    rng: np.random.Generator,
    n: int,
    fps: float,
    amplitude: float,
    freq: tuple[float, float] = (0.15, 0.9),
    parts: int = 3,
) -> np.ndarray:
    """A smooth random curve (n,) in [-amplitude, amplitude]: a sum of sinusoids of ``freq`` Hz."""
    t = np.arange(n) / fps
    f = rng.uniform(*freq, size=parts)
    phase = rng.uniform(0, 2 * np.pi, size=parts)
    weight = rng.uniform(0.3, 1.0, size=parts)
    curve = (weight[:, None] * np.sin(2 * np.pi * f[:, None] * t[None] + phase[:, None])).sum(0) / weight.sum()
    return amplitude * curve


@dataclass(frozen=True)
class Envelope:
    """Onset-apex-offset: 0 until ``start``, smooth rise, apex hold, smooth fall to ``end_level``."""

    start: float  # frames
    rise: float
    fall_start: float
    fall: float
    end_level: float

    def __call__(self, n: int) -> np.ndarray:
        """The envelope over ``n`` frames: rise, hold, then fall to ``end_level``."""
        t = np.arange(n, dtype=float)
        up = smoothstep((t - self.start) / max(self.rise, 1e-6))
        down = 1 - (1 - self.end_level) * smoothstep((t - self.fall_start) / max(self.fall, 1e-6))
        return up * down


def random_envelope(rng: np.random.Generator, n: int) -> Envelope:
    """An expression time course over a clip of n frames; the apex covers at least ~35 % of it."""
    start = rng.uniform(0.0, 0.2) * n
    rise = rng.uniform(0.12, 0.3) * n
    apex = rng.uniform(0.35, 0.6) * n
    fall_start = start + rise + apex
    fall = rng.uniform(0.15, 0.35) * n
    end_level = rng.uniform(0.2, 0.8) if fall_start < n else 1.0
    return Envelope(start, rise, fall_start, fall, end_level)


def blinks(rng: np.random.Generator, n: int, fps: float, rate_hz: float = 0.3) -> np.ndarray:
    """Eye closure (n,) in [0, 1]: blinks of about 0.2 s at random times (Poisson, ``rate_hz``)."""
    closure = np.zeros(n)
    t = rng.exponential(1 / rate_hz) * fps * rng.uniform(0.2, 1.0)
    while t < n:
        half = rng.uniform(0.07, 0.12) * fps
        k = np.arange(n)
        closure = np.maximum(closure, np.clip(1 - np.abs(k - t) / half, 0, 1) ** 0.7)
        t += (rng.exponential(1 / rate_hz) + 0.4) * fps
    return closure


def speech(rng: np.random.Generator, n: int, fps: float, amplitude: float) -> np.ndarray:
    """Jaw opening (n,) >= 0 of talking: syllables at 3-6 Hz, phrases with pauses."""
    t = np.arange(n) / fps
    syllables = np.zeros(n)
    for _ in range(3):
        syllables += np.sin(2 * np.pi * rng.uniform(3.0, 6.0) * t + rng.uniform(0, 2 * np.pi))
    syllables = np.clip(syllables / 3 + 0.35, 0, None)
    phrases = smoothstep(0.5 + 2.0 * smooth_curve(rng, n, fps, 1.0, freq=(0.2, 0.6), parts=2))
    return amplitude * syllables * phrases / max(1e-6, float(np.max(syllables)))


@dataclass(frozen=True)
class Pose:
    """Head pose per frame: roll (radians), scale factor, shift (pixels, x and y). Arrays of length n."""

    roll: np.ndarray
    scale: np.ndarray
    shift_x: np.ndarray
    shift_y: np.ndarray

    def at(self, t: int) -> tuple[float, float, float, float]:
        """(roll, scale, shift_x, shift_y) of frame ``t``."""
        return float(self.roll[t]), float(self.scale[t]), float(self.shift_x[t]), float(self.shift_y[t])


def random_pose(
    rng: np.random.Generator,
    n: int,
    fps: float,
    roll_deg: float = 3.0,
    scale: float = 0.03,
    shift: float = 3.0,
    offset_shift: float = 4.0,
    offset_scale: float = 0.06,
) -> Pose:
    """Small random head motion: a per-clip offset plus smooth drift (degrees, fraction, pixels)."""
    roll = np.deg2rad(rng.uniform(-roll_deg, roll_deg) * 0.5 + smooth_curve(rng, n, fps, roll_deg))
    scale_t = np.exp(rng.uniform(-offset_scale, offset_scale) + smooth_curve(rng, n, fps, scale, freq=(0.1, 0.5)))
    sx = rng.uniform(-offset_shift, offset_shift) + smooth_curve(rng, n, fps, shift)
    sy = rng.uniform(-offset_shift, offset_shift) + smooth_curve(rng, n, fps, shift)
    return Pose(roll, scale_t, sx, sy)
