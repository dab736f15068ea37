"""Clip transforms: one random draw per clip, applied identically to every frame.

Every transform is a callable ``t(clip, rng) -> clip`` taking a clip (T, C, H, W) (uint8 or
float) and a numpy Generator, which is the only source of randomness (so a clip's
augmentation is a function of the generator's seed). :class:`ToModelLayout` ends each pipeline
with the models' layout, float32 (C, T, H, W).

Pipelines (the authors' VideoMAE-derived ones):

* :func:`finetune_train_transform`: resize (short side, a no-op for the 160 x 160 face crops),
  RandAugment ``rand-m7-n4-mstd0.5-inc1`` (PIL, bicubic), ImageNet normalisation, random
  resized crop (scale 0.08-1, ratio 0.75-1.3333, bilinear) to 160, horizontal flip 0.5,
  random erasing (p 0.25, 'pixel' mode, the same box in every frame).
* :func:`eval_transform`: resize short side to 160, centre crop 160, normalise.
* :func:`pretrain_transform`: VideoMAE's GroupMultiScaleCrop (scales 1, .875, .75, .66, fixed
  offsets) resized to 160, normalise.

Frames stored larger than the model input (an ingest with ``store_size``) are first resized
to ``size`` x ``size`` by :func:`pil_bilinear_resize` when the loader reads them, before any
of these pipelines: PIL's bilinear filter on each decoded frame, as the authors' loader
resizes their original frames (``Resize((160, 160))`` on PIL images).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from einops import rearrange
from PIL import Image

from maedfer.constants import IMAGENET_MEAN, IMAGENET_STD, IMG_SIZE
from maedfer.data.erasing import RandomErasing, check_clip
from maedfer.data.rand_augment import DEFAULT_CONFIG, RandAugment

# The authors' crop ranges: scale [0.08, 1.0], aspect ratio [0.75, 1.3333] (sic, not 4/3).
RRC_SCALE: tuple[float, float] = (0.08, 1.0)
RRC_RATIO: tuple[float, float] = (0.75, 1.3333)
MULTI_SCALES: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)


class ClipTransform(Protocol):
    """A clip transform: (T, C, H, W) clip and a random generator in, transformed clip out."""
    def __call__(self, clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Transform ``clip`` drawing any randomness from ``rng``."""
        ...


class Compose:
    """Apply transforms in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[ClipTransform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Apply the transforms in order."""
        for t in self.transforms:
            clip = t(clip, rng)
        return clip

    def __repr__(self) -> str:
        return "Compose(\n  " + ",\n  ".join(repr(t) for t in self.transforms) + "\n)"


def _resize(clip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (T, C, H, W) to ``size`` (h, w); antialiased like PIL; keeps the dtype."""
    if tuple(clip.shape[-2:]) == tuple(size):
        return clip
    return TF.resize(clip, list(size), interpolation=TF.InterpolationMode.BILINEAR, antialias=True)


def pil_bilinear_resize(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> uint8 (N, 3, size, size), each frame by PIL's bilinear ``Image.resize``.

    The whole frame is scaled to the square (no crop, aspect ratio not kept), as the authors'
    ``Resize((size, size))``; frames already ``size`` x ``size`` are returned unchanged.
    """
    if frames.ndim != 4 or frames.dtype != torch.uint8:
        raise ValueError(f"pil_bilinear_resize expects uint8 (N, 3, H, W), got {frames.dtype} {tuple(frames.shape)}")
    if tuple(frames.shape[-2:]) == (size, size):
        return frames
    hwc = frames.permute(0, 2, 3, 1).numpy()
    out = [np.asarray(Image.fromarray(f).resize((size, size), Image.Resampling.BILINEAR)) for f in hwc]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


class ResizeShortSide:
    """Resize so that the shorter side is ``size`` (aspect ratio kept)."""

    def __init__(self, size: int = IMG_SIZE) -> None:
        self.size = int(size)

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Resize the clip so that its short side is ``size``."""
        check_clip(clip, "ResizeShortSide")
        h, w = clip.shape[-2:]
        if min(h, w) == self.size:
            return clip
        if h <= w:
            new = (self.size, max(1, int(self.size * w / h)))
        else:
            new = (max(1, int(self.size * h / w)), self.size)
        return _resize(clip, new)

    def __repr__(self) -> str:
        return f"ResizeShortSide({self.size})"


class CenterCrop:
    """Crop the central ``size`` x ``size`` square of every frame."""
    def __init__(self, size: int = IMG_SIZE) -> None:
        self.size = int(size)

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        """The central crop of the clip."""
        check_clip(clip, "CenterCrop")
        h, w = clip.shape[-2:]
        if h < self.size or w < self.size:
            raise ValueError(f"CenterCrop({self.size}) on a {h}x{w} clip; resize it first")
        top, left = int(round((h - self.size) / 2.0)), int(round((w - self.size) / 2.0))
        return clip[..., top : top + self.size, left : left + self.size]

    def __repr__(self) -> str:
        return f"CenterCrop({self.size})"


def random_resized_crop_params(
    height: int,
    width: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = RRC_SCALE,
    ratio: tuple[float, float] = RRC_RATIO,
    attempts: int = 10,
) -> tuple[int, int, int, int]:
    """Draw a random crop as torchvision's RandomResizedCrop does.

    (top, left, h, w) of a random crop: area fraction in ``scale``, log-uniform aspect in
    ``ratio``; after ``attempts`` misses, the central crop clamped to ``ratio``.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(attempts):
        target_area = rng.uniform(*scale) * area
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class RandomResizedCrop:
    """One random crop for the whole clip.

    One random crop for the whole clip, resized to ``size`` x ``size`` with (non-antialiased)
    bilinear interpolation, as the authors' ``random_resized_crop`` (F.interpolate).
    """

    def __init__(self, size: int = IMG_SIZE, scale=RRC_SCALE, ratio=RRC_RATIO) -> None:
        self.size = int(size)
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """The same random crop on every frame, resized to ``size`` x ``size``."""
        check_clip(clip, "RandomResizedCrop")
        return self.apply(clip, random_resized_crop_params(clip.shape[-2], clip.shape[-1], rng, self.scale, self.ratio))

    def apply(self, clip: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
        """Crop the drawn (top, left, h, w) of every frame and resize it to ``size`` x ``size`` (any device)."""
        top, left, h, w = box
        t, c = clip.shape[:2]
        crop = clip[..., top : top + h, left : left + w].float().contiguous().view(t * c, 1, h, w)
        # one plane per (frame, channel): the same values, ~5x faster than (T, C) planes on CPU
        out = F.interpolate(crop, size=(self.size, self.size), mode="bilinear", align_corners=False)
        out = out.view(t, c, self.size, self.size)
        if clip.dtype == torch.uint8:
            return out.round_().clamp_(0, 255).to(torch.uint8)
        return out.to(clip.dtype)

    def __repr__(self) -> str:
        return f"RandomResizedCrop({self.size}, scale={self.scale}, ratio={self.ratio})"


class RandomHorizontalFlip:
    """Flip the whole clip horizontally with probability ``p``."""
    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """The clip, flipped with probability ``p``."""
        return clip.flip(-1) if rng.random() < self.p else clip

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize:
    """uint8 [0, 255] or float [0, 1] -> float32 (x - mean) / std, per channel (dim 1)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float64).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float64).view(1, -1, 1, 1)
        # x * scale - shift in one fused pass: scale = 1 / (255 std) for uint8 (1 / std for float)
        self._shift = (self.mean / self.std).float()
        self._scale_u8 = (1.0 / (255.0 * self.std)).float()
        self._scale_f = (1.0 / self.std).float()

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        """(x / 255 for uint8) minus the mean, divided by the std, per channel, as float32."""
        check_clip(clip, "Normalize")
        scale = self._scale_u8 if clip.dtype == torch.uint8 else self._scale_f
        x = clip.float() if clip.dtype != torch.float32 else clip.clone()
        return x.mul_(scale.to(x.device)).sub_(self._shift.to(x.device))

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


class GroupMultiScaleCrop:
    """VideoMAE's multi-scale crop, the same for every frame.

    VideoMAE's GroupMultiScaleCrop: crop sides from ``scales`` x the short side (sides
    within 3 pixels of ``size`` snap to it; width and height at most ``max_distort`` scale
    steps apart), at one of 13 fixed offsets (or anywhere with ``fix_crop=False``), resized
    to ``size`` x ``size`` (bilinear).
    """

    def __init__(
        self,
        size: int = IMG_SIZE,
        scales: Sequence[float] = MULTI_SCALES,
        max_distort: int = 1,
        fix_crop: bool = True,
        more_fix_crop: bool = True,
    ) -> None:
        self.size = int(size)
        self.scales = tuple(scales)
        self.max_distort = int(max_distort)
        self.fix_crop = bool(fix_crop)
        self.more_fix_crop = bool(more_fix_crop)

    @staticmethod
    def fixed_offsets(more: bool, image_w: int, image_h: int, crop_w: int, crop_h: int) -> list[tuple[int, int]]:
        """Top-left offsets of the fixed crops (corners and centre; more positions with ``more``)."""
        w_step, h_step = (image_w - crop_w) // 4, (image_h - crop_h) // 4
        grid = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2)]
        if more:
            grid += [(0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
        return [(i * w_step, j * h_step) for i, j in grid]

    def params(self, image_h: int, image_w: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """(crop_w, crop_h, offset_w, offset_h)."""
        base = min(image_w, image_h)
        sides = [int(base * s) for s in self.scales]
        crop_h = [self.size if abs(x - self.size) < 3 else x for x in sides]
        crop_w = [self.size if abs(x - self.size) < 3 else x for x in sides]
        pairs = [(w, h) for i, h in enumerate(crop_h) for j, w in enumerate(crop_w) if abs(i - j) <= self.max_distort]
        cw, ch = pairs[int(rng.integers(len(pairs)))]
        if self.fix_crop:
            offsets = self.fixed_offsets(self.more_fix_crop, image_w, image_h, cw, ch)
            ow, oh = offsets[int(rng.integers(len(offsets)))]
        else:
            ow, oh = int(rng.integers(0, image_w - cw + 1)), int(rng.integers(0, image_h - ch + 1))
        return cw, ch, ow, oh

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """The same multi-scale crop on every frame, resized to ``size`` x ``size``."""
        check_clip(clip, "GroupMultiScaleCrop")
        return self.apply(clip, self.params(clip.shape[-2], clip.shape[-1], rng))

    def apply(self, clip: torch.Tensor, params: tuple[int, int, int, int]) -> torch.Tensor:
        """Crop the drawn (crop_w, crop_h, offset_w, offset_h) and resize it to ``size`` x ``size`` (any device)."""
        cw, ch, ow, oh = params
        return _resize(clip[..., oh : oh + ch, ow : ow + cw], (self.size, self.size))

    def __repr__(self) -> str:
        return f"GroupMultiScaleCrop({self.size}, scales={self.scales}, max_distort={self.max_distort})"


class ToModelLayout:
    """(T, C, H, W) -> contiguous float32 (C, T, H, W)."""

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        """The clip as contiguous float32 (C, T, H, W)."""
        check_clip(clip, "ToModelLayout")
        return rearrange(clip.float(), "t c h w -> c t h w").contiguous()

    def __repr__(self) -> str:
        return "ToModelLayout()"


# ----------------------------------------------------------------------------------------------
# The pipelines


def finetune_train_transform(
    size: int = IMG_SIZE,
    auto_augment: str | None = DEFAULT_CONFIG,
    interpolation: str = "bicubic",
    scale: tuple[float, float] = RRC_SCALE,
    ratio: tuple[float, float] = RRC_RATIO,
    hflip: float = 0.5,
    reprob: float = 0.25,
    remode: str = "pixel",
    recount: int = 1,
) -> Compose:
    """uint8 (T, 3, H, W) -> augmented float32 (3, T, size, size)."""
    steps: list[ClipTransform] = [ResizeShortSide(size)]
    if auto_augment:
        steps.append(RandAugment.from_config(auto_augment, interpolation=interpolation))
    # The authors' order: normalise, then crop (bilinear on float values, no rounding), flip, erase.
    steps += [Normalize(), RandomResizedCrop(size, scale, ratio), RandomHorizontalFlip(hflip)]
    if reprob > 0:
        steps.append(RandomErasing(reprob, mode=remode, count=recount))
    steps.append(ToModelLayout())
    return Compose(steps)


def eval_transform(size: int = IMG_SIZE) -> Compose:
    """uint8 (T, 3, H, W) -> float32 (3, T, size, size); deterministic."""
    return Compose([ResizeShortSide(size), CenterCrop(size), Normalize(), ToModelLayout()])


def pretrain_transform(size: int = IMG_SIZE, scales: Sequence[float] = MULTI_SCALES) -> Compose:
    """uint8 (T, 3, H, W) -> float32 (3, T, size, size) for masked pre-training."""
    return Compose([GroupMultiScaleCrop(size, scales), Normalize(), ToModelLayout()])
