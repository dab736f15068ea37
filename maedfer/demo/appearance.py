"""Per-clip appearance: lighting, background and noise.

Per-clip appearance: lighting (brightness / contrast / gamma / colour, drifting over time,
with a directional shading ramp), an optional replaced background, sensor noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from maedfer.demo.motion import smooth_curve


@dataclass(frozen=True)
class Lighting:
    """Per-frame lighting of one clip: gamma, contrast, brightness, colour cast and shading."""
    gamma: np.ndarray  # (n,)
    contrast: np.ndarray  # (n,)
    brightness: np.ndarray  # (n,) in units of full scale
    gains: np.ndarray  # (3,) colour cast
    shade_strength: np.ndarray  # (n,)
    shade_angle: np.ndarray  # (n,) radians
    noise: float  # Gaussian sensor noise, grey levels

    def apply(self, image: np.ndarray, t: int, rng: np.random.Generator) -> np.ndarray:
        """float32 RGB (H, W, 3) in 0..255 -> uint8 RGB with frame t's lighting."""
        h, w = image.shape[:2]
        x = (np.arange(w, dtype=np.float32) - w / 2) / w
        y = (np.arange(h, dtype=np.float32) - h / 2) / h
        ramp = np.cos(self.shade_angle[t]) * x[None, :] + np.sin(self.shade_angle[t]) * y[:, None]
        shade = (1 + self.shade_strength[t] * 2 * ramp).astype(np.float32)[..., None]  # (H, W, 1)
        v = np.clip(image * (1 / 255.0), 0, 1) ** np.float32(self.gamma[t])
        v = (v - 0.5) * np.float32(self.contrast[t]) + 0.5 + np.float32(self.brightness[t])
        v = v * shade * self.gains.astype(np.float32)
        if self.noise > 0:
            v = v + rng.standard_normal(v.shape, dtype=np.float32) * np.float32(self.noise / 255.0)
        return np.clip(v * 255 + 0.5, 0, 255).astype(np.uint8)


def random_lighting(rng: np.random.Generator, n: int, fps: float, strength: float = 1.0) -> Lighting:
    """Random lighting for ``n`` frames: a per-clip offset plus smooth drift, scaled by ``strength``."""
    k = strength
    gamma = np.exp(rng.uniform(-0.25, 0.25) * k + smooth_curve(rng, n, fps, 0.08 * k, freq=(0.1, 0.5)))
    contrast = np.exp(rng.uniform(-0.25, 0.12) * k + smooth_curve(rng, n, fps, 0.05 * k, freq=(0.1, 0.5)))
    brightness = rng.uniform(-0.08, 0.08) * k + smooth_curve(rng, n, fps, 0.04 * k, freq=(0.1, 0.5))
    gains = np.exp(rng.uniform(-0.08, 0.08, size=3) * k)
    shade = np.abs(rng.uniform(0.0, 0.2) * k + smooth_curve(rng, n, fps, 0.05 * k, freq=(0.1, 0.4)))
    angle = rng.uniform(0, 2 * np.pi) + smooth_curve(rng, n, fps, 0.4, freq=(0.1, 0.4))
    noise = float(rng.uniform(0.0, 3.0) * k)
    return Lighting(gamma, contrast, brightness, gains, shade, angle, noise)


@dataclass(frozen=True)
class Background:
    """A texture crop drifting slowly behind the head; the head is kept inside a soft ellipse."""

    image: np.ndarray  # (S, S, 3) float32, larger than the output
    path_x: np.ndarray  # (n,) crop offsets
    path_y: np.ndarray
    centre: tuple[float, float]  # head ellipse in face coordinates
    radii: tuple[float, float]

    def frame(self, t: int, size: int) -> np.ndarray:
        """The ``size`` x ``size`` background window of frame ``t``."""
        x, y = int(round(self.path_x[t])), int(round(self.path_y[t]))
        return self.image[y : y + size, x : x + size]

    def head_mask(self, q: np.ndarray) -> np.ndarray:
        """Soft ellipse (h, w) in face coordinates: 1 on the head, 0 on the background."""
        dx = (q[..., 0] - self.centre[0]) / self.radii[0]
        dy = (q[..., 1] - self.centre[1]) / self.radii[1]
        r = np.sqrt(dx * dx + dy * dy)
        return np.clip((1.15 - r) / 0.3, 0, 1).astype(np.float32)


def random_background(
    rng: np.random.Generator, textures: list[np.ndarray], n: int, size: int, fps: float
) -> Background:
    """A random texture (or a colour gradient), recoloured, drifting by a few pixels."""
    margin = 24
    side = size + 2 * margin
    if rng.random() < 0.25 or not textures:
        top, bottom = rng.uniform(30, 220, size=3), rng.uniform(30, 220, size=3)
        ramp = np.linspace(0, 1, side, dtype=np.float32)[:, None, None]
        image = (top * (1 - ramp) + bottom * ramp).astype(np.float32) * np.ones((1, side, 1), np.float32)
    else:
        tex = textures[int(rng.integers(len(textures)))]
        h, w = tex.shape[:2]
        crop = int(min(h, w) * rng.uniform(0.45, 1.0))
        y0, x0 = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        patch = cv2.resize(tex[y0 : y0 + crop, x0 : x0 + crop], (side, side), interpolation=cv2.INTER_AREA)
        patch = cv2.GaussianBlur(patch, (0, 0), rng.uniform(0.5, 3.0))
        image = patch.astype(np.float32) * np.exp(rng.uniform(-0.3, 0.3, size=3)).astype(np.float32)
    path_x = margin + smooth_curve(rng, n, fps, margin * 0.25, freq=(0.05, 0.3))
    path_y = margin + smooth_curve(rng, n, fps, margin * 0.25, freq=(0.05, 0.3))
    centre = (0.0, float(rng.uniform(0.45, 0.65)))
    radii = (float(rng.uniform(1.2, 1.45)), float(rng.uniform(1.7, 2.0)))
    return Background(np.clip(image, 0, 255), path_x, path_y, centre, radii)
