"""Random erasing of clips: one box at the same place in every frame (VideoMAE's "cube" mode)."""

from __future__ import annotations

import math

import numpy as np
import torch


def check_clip(clip: torch.Tensor, name: str) -> None:
    """Raise a ValueError naming the transform ``name`` unless ``clip`` is one clip (T, C, H, W)."""
    if clip.ndim != 4:
        raise ValueError(f"{name} expects a clip (T, C, H, W), got shape {tuple(clip.shape)}")


class RandomErasing:
    """Erase one box (``count`` boxes) at the same place in every frame (VideoMAE's "cube" mode).

    Box: area fraction uniform in [min_area, max_area] / count, log-uniform aspect ratio in
    [min_aspect, 1 / min_aspect], 100 attempts. Fill by ``mode``: 'pixel' = standard normal
    noise per pixel, 'rand' = one normal colour, 'const' = 0 (on a normalised clip). As the
    authors', the noise is drawn afresh for every frame; ``same_noise=True`` draws it once.
    Works on float clips (normalised).
    """

    def __init__(
        self,
        probability: float = 0.25,
        mode: str = "pixel",
        min_area: float = 0.02,
        max_area: float = 1 / 3,
        min_aspect: float = 0.3,
        max_aspect: float | None = None,
        count: int = 1,
        same_noise: bool = False,
    ) -> None:
        if mode not in ("pixel", "rand", "const"):
            raise ValueError(f"RandomErasing mode must be 'pixel', 'rand' or 'const', got {mode!r}")
        self.probability = float(probability)
        self.mode = mode
        self.min_area, self.max_area = float(min_area), float(max_area)
        self.log_aspect = (math.log(min_aspect), math.log(max_aspect or 1.0 / min_aspect))
        self.count = int(count)
        self.same_noise = bool(same_noise)

    def boxes(self, height: int, width: int, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
        """The (top, left, h, w) boxes to erase (empty when the coin says no)."""
        if rng.random() > self.probability:
            return []
        area = height * width
        out = []
        for _ in range(self.count):
            for _ in range(100):
                target_area = rng.uniform(self.min_area, self.max_area) * area / self.count
                aspect = math.exp(rng.uniform(*self.log_aspect))
                h = int(round(math.sqrt(target_area * aspect)))
                w = int(round(math.sqrt(target_area / aspect)))
                if w < width and h < height:
                    out.append((int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w))
                    break
        return out

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """The clip with the same random rectangles erased in every frame."""
        check_clip(clip, "RandomErasing")
        if not clip.is_floating_point():
            raise TypeError("RandomErasing works on a float (normalised) clip; put it after Normalize")
        boxes = self.boxes(clip.shape[-2], clip.shape[-1], rng)
        if not boxes:
            return clip
        return self.apply(clip, boxes, int(rng.integers(2**63)))

    def apply(self, clip: torch.Tensor, boxes: list[tuple[int, int, int, int]], seed: int) -> torch.Tensor:
        """Erase drawn ``boxes`` of a float clip (T, C, H, W), noise from a generator on its device seeded ``seed``.

        On CPU the noise is the CPU path's; on another device it has the same distribution, other values.
        """
        if not boxes:
            return clip
        if not clip.is_floating_point():
            raise TypeError("RandomErasing works on a float (normalised) clip; put it after Normalize")
        clip = clip.clone()
        t, c = clip.shape[:2]
        gen = torch.Generator(device=clip.device).manual_seed(seed)
        for top, left, h, w in boxes:
            frames = 1 if self.same_noise else t
            if self.mode == "pixel":
                fill = torch.randn((frames, c, h, w), generator=gen, dtype=clip.dtype, device=clip.device)
            elif self.mode == "rand":
                fill = torch.randn((frames, c, 1, 1), generator=gen, dtype=clip.dtype, device=clip.device)
            else:
                fill = torch.zeros((1, c, 1, 1), dtype=clip.dtype, device=clip.device)
            clip[:, :, top : top + h, left : left + w] = fill
        return clip

    def __repr__(self) -> str:
        return f"RandomErasing(p={self.probability}, mode={self.mode!r}, count={self.count})"
