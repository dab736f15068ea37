"""Per-clip augmentation plans: the CPU transforms' random draws, without touching a pixel.

:func:`draw_plan` walks a :class:`~maedfer.data.transforms.Compose` and, for each step, makes the
draws that step's ``__call__`` would make, from the same generator, in the same order, with the same
methods (``RandAugment.sample``, ``random_resized_crop_params``, ``GroupMultiScaleCrop.params``,
``RandomErasing.boxes``). A sample's plan is therefore a function of (seed, epoch, index) only, and the
device path applies exactly the crops, flips, ops and boxes the CPU path would. Only the frame size
is needed: it is read from the first JPEG's header.

Random erasing's per-pixel noise: the CPU path seeds a CPU ``torch.Generator`` with
``rng.integers(2**63)`` drawn after the boxes; the plan keeps that seed. On CPU tensors the device
path draws the noise from a CPU generator with that seed (identical values); on a GPU it draws it
from a generator of that device seeded the same way (the same distribution, other values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from maedfer.data.erasing import RandomErasing
from maedfer.data.rand_augment import RandAugment
from maedfer.data.transforms import (
    CenterCrop,
    Compose,
    GroupMultiScaleCrop,
    Normalize,
    RandomHorizontalFlip,
    RandomResizedCrop,
    ResizeShortSide,
    ToModelLayout,
    random_resized_crop_params,
)

SUPPORTED = (ResizeShortSide, CenterCrop, RandAugment, Normalize, RandomResizedCrop, RandomHorizontalFlip,
             RandomErasing, GroupMultiScaleCrop, ToModelLayout)


class NoDeviceVersion(ValueError):
    """A transform of the pipeline has no device version."""


@dataclass
class ClipPlan:
    """What the device path needs for one clip: frame gather order and one parameter entry per step.

    ``inverse`` (T,) maps the clip's frames to the distinct decoded frames (the bytes the worker read);
    ``steps[k]`` is the parameter of the pipeline's step k (None for a step without draws):
    RandAugment -> list of DrawnOp; RandomResizedCrop -> (top, left, h, w); RandomHorizontalFlip -> bool;
    RandomErasing -> (boxes, noise seed or None); GroupMultiScaleCrop -> (crop_w, crop_h, off_w, off_h).
    """

    inverse: np.ndarray
    steps: list[Any] = field(default_factory=list)


def check_device_pipeline(transform: Compose) -> None:
    """Raise :class:`NoDeviceVersion` naming the first step the device path cannot run."""
    for t in getattr(transform, "transforms", [transform]):
        if isinstance(t, RandAugment) and t.resample != Image.Resampling.BICUBIC:
            raise NoDeviceVersion(f"{t!r}: the device path's affine ops are bicubic only; use data_path 'cpu'")
        if not isinstance(t, SUPPORTED):
            raise NoDeviceVersion(
                f"transform {t!r} has no device version; use data_path 'cpu' (supported: "
                f"{', '.join(c.__name__ for c in SUPPORTED)})"
            )


def resized_short_side(t: ResizeShortSide, h: int, w: int) -> tuple[int, int]:
    """The (h, w) ResizeShortSide gives a (h, w) frame (its own arithmetic)."""
    if min(h, w) == t.size:
        return h, w
    if h <= w:
        return t.size, max(1, int(t.size * w / h))
    return max(1, int(t.size * h / w)), t.size


def draw_plan(transform: Compose, height: int, width: int, rng: np.random.Generator) -> list[Any]:
    """One parameter entry per step of ``transform`` for a clip of ``height`` x ``width`` frames."""
    check_device_pipeline(transform)
    h, w = int(height), int(width)
    out: list[Any] = []
    for t in transform.transforms:
        entry: Any = None
        if isinstance(t, ResizeShortSide):
            h, w = resized_short_side(t, h, w)
        elif isinstance(t, CenterCrop):
            if h < t.size or w < t.size:
                raise ValueError(f"CenterCrop({t.size}) on a {h}x{w} clip; resize it first")
            h = w = t.size
        elif isinstance(t, RandAugment):
            entry = t.sample(rng)
        elif isinstance(t, RandomResizedCrop):
            entry = random_resized_crop_params(h, w, rng, t.scale, t.ratio)
            h = w = t.size
        elif isinstance(t, RandomHorizontalFlip):
            entry = bool(rng.random() < t.p)
        elif isinstance(t, RandomErasing):
            boxes = t.boxes(h, w, rng)
            entry = (boxes, int(rng.integers(2**63)) if boxes else None)
        elif isinstance(t, GroupMultiScaleCrop):
            entry = t.params(h, w, rng)
            h = w = t.size
        out.append(entry)
    return out
