"""RandAugment for clips, with timm's ``rand-m{M}-n{N}-mstd{S}-inc{I}`` semantics.

What the authors ran (VideoMAE's copy of timm's ``auto_augment.py``, config
``rand-m7-n4-mstd0.5-inc1``, bicubic resampling, grey fill (128, 128, 128)):

* draw ``N`` ops uniformly *with replacement* from the 15-op set ("increasing" variants
  when ``inc1``);
* each drawn op is applied with probability 0.5; when applied, its magnitude is drawn from
  Normal(M, S) and clipped to [0, 10], then mapped to the op's argument (with a random sign
  for the signed ops);
* the drawn ops, magnitudes and signs are applied identically to EVERY frame of the clip.

The ops run on PIL images (as the authors'); the draws come from a numpy Generator passed in,
never from the global ``random`` / ``np.random`` state.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange
from PIL import Image, ImageEnhance, ImageOps

MAX_LEVEL: float = 10.0
FILL: tuple[int, int, int] = (128, 128, 128)
DEFAULT_CONFIG: str = "rand-m7-n4-mstd0.5-inc1"

_INTERPOLATION = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}

# ----------------------------------------------------------------------------------------------
# Ops on one PIL image. ``resample`` and ``fill`` only matter to the geometric ones.


def _affine(img: Image.Image, matrix: tuple[float, ...], resample: int, fill: tuple[int, ...]) -> Image.Image:
    return img.transform(img.size, Image.Transform.AFFINE, matrix, resample=resample, fillcolor=fill)


def shear_x(img: Image.Image, factor: float, resample: int, fill: tuple[int, ...]) -> Image.Image:
    """Shear horizontally by ``factor``."""
    return _affine(img, (1, factor, 0, 0, 1, 0), resample, fill)


def shear_y(img: Image.Image, factor: float, resample: int, fill: tuple[int, ...]) -> Image.Image:
    """Shear vertically by ``factor``."""
    return _affine(img, (1, 0, 0, factor, 1, 0), resample, fill)


def translate_x_rel(img: Image.Image, pct: float, resample: int, fill: tuple[int, ...]) -> Image.Image:
    """Translate horizontally by ``pct`` of the width."""
    return _affine(img, (1, 0, pct * img.size[0], 0, 1, 0), resample, fill)


def translate_y_rel(img: Image.Image, pct: float, resample: int, fill: tuple[int, ...]) -> Image.Image:
    """Translate vertically by ``pct`` of the height."""
    return _affine(img, (1, 0, 0, 0, 1, pct * img.size[1]), resample, fill)


def rotate(img: Image.Image, degrees: float, resample: int, fill: tuple[int, ...]) -> Image.Image:
    """Rotate by ``degrees`` about the centre."""
    return img.rotate(degrees, resample=resample, fillcolor=fill)


def auto_contrast(img: Image.Image, resample: int, fill: tuple[int, ...]) -> Image.Image:
    """Stretch each channel's histogram to the full range."""
    return ImageOps.autocontrast(img)


def invert(img: Image.Image, resample: int, fill: tuple[int, ...]) -> Image.Image:
    """Invert the pixel values."""
    return ImageOps.invert(img)


def equalize(img: Image.Image, resample: int, fill: tuple[int, ...]) -> Image.Image:
    """Equalise the histogram."""
    return ImageOps.equalize(img)


def solarize(img: Image.Image, thresh: int, resample: int, fill: tuple[int, ...]) -> Image.Image:
    """Invert the pixels at or above ``thresh``."""
    return ImageOps.solarize(img, thresh)


def solarize_add(img: Image.Image, add: int, resample: int, fill: tuple[int, ...], thresh: int = 128) -> Image.Image:
    """Add ``add`` to the pixels below ``thresh`` (clipped to 255)."""
    lut = [min(255, i + add) if i < thresh else i for i in range(256)]
    if img.mode not in ("L", "RGB"):
        return img
    return img.point(lut * (3 if img.mode == "RGB" else 1))


def posterize(img: Image.Image, bits: int, resample: int, fill: tuple[int, ...]) -> Image.Image:
    """Keep the ``bits`` most significant bits of each pixel."""
    return img if bits >= 8 else ImageOps.posterize(img, bits)


def color(img: Image.Image, factor: float, resample: int, fill: tuple[int, ...]) -> Image.Image:
    """Change the colour saturation by ``factor`` (1 = unchanged)."""
    return ImageEnhance.Color(img).enhance(factor)


def contrast(img: Image.Image, factor: float, resample: int, fill: tuple[int, ...]) -> Image.Image:
    """Change the contrast by ``factor`` (1 = unchanged)."""
    return ImageEnhance.Contrast(img).enhance(factor)


def brightness(img: Image.Image, factor: float, resample: int, fill: tuple[int, ...]) -> Image.Image:
    """Change the brightness by ``factor`` (1 = unchanged)."""
    return ImageEnhance.Brightness(img).enhance(factor)


def sharpness(img: Image.Image, factor: float, resample: int, fill: tuple[int, ...]) -> Image.Image:
    """Change the sharpness by ``factor`` (1 = unchanged)."""
    return ImageEnhance.Sharpness(img).enhance(factor)


# ----------------------------------------------------------------------------------------------
# Magnitude (0..10) -> op arguments; signed ops draw their sign from the generator.


def _negate(value: float, rng: np.random.Generator) -> float:
    return -value if rng.random() > 0.5 else value


def _no_args(level: float, rng: np.random.Generator) -> tuple:
    return ()


def _rotate_args(level: float, rng: np.random.Generator) -> tuple:
    return (_negate(level / MAX_LEVEL * 30.0, rng),)  # [-30, 30] degrees


def _enhance_args(level: float, rng: np.random.Generator) -> tuple:
    return (level / MAX_LEVEL * 1.8 + 0.1,)  # [0.1, 1.9]


def _enhance_increasing_args(level: float, rng: np.random.Generator) -> tuple:
    return (1.0 + _negate(level / MAX_LEVEL * 0.9, rng),)  # 1 +- [0, 0.9]


def _shear_args(level: float, rng: np.random.Generator) -> tuple:
    return (_negate(level / MAX_LEVEL * 0.3, rng),)  # [-0.3, 0.3]


def _translate_rel_args(level: float, rng: np.random.Generator) -> tuple:
    return (_negate(level / MAX_LEVEL * 0.45, rng),)  # [-0.45, 0.45] of the image size


def _posterize_args(level: float, rng: np.random.Generator) -> tuple:
    return (int(level / MAX_LEVEL * 4),)  # keep [0, 4] bits


def _posterize_increasing_args(level: float, rng: np.random.Generator) -> tuple:
    return (4 - int(level / MAX_LEVEL * 4),)  # keep [4, 0] bits


def _solarize_args(level: float, rng: np.random.Generator) -> tuple:
    return (int(level / MAX_LEVEL * 256),)  # threshold [0, 256]


def _solarize_increasing_args(level: float, rng: np.random.Generator) -> tuple:
    return (256 - int(level / MAX_LEVEL * 256),)  # threshold [256, 0]


def _solarize_add_args(level: float, rng: np.random.Generator) -> tuple:
    return (int(level / MAX_LEVEL * 110),)  # add [0, 110]


@dataclass(frozen=True)
class OpDef:
    """One RandAugment operation: the image function and how a magnitude maps to its arguments."""
    fn: Callable[..., Image.Image]
    level_to_args: Callable[[float, np.random.Generator], tuple]


OPS: dict[str, OpDef] = {
    "AutoContrast": OpDef(auto_contrast, _no_args),
    "Equalize": OpDef(equalize, _no_args),
    "Invert": OpDef(invert, _no_args),
    "Rotate": OpDef(rotate, _rotate_args),
    "Posterize": OpDef(posterize, _posterize_args),
    "PosterizeIncreasing": OpDef(posterize, _posterize_increasing_args),
    "Solarize": OpDef(solarize, _solarize_args),
    "SolarizeIncreasing": OpDef(solarize, _solarize_increasing_args),
    "SolarizeAdd": OpDef(solarize_add, _solarize_add_args),
    "Color": OpDef(color, _enhance_args),
    "ColorIncreasing": OpDef(color, _enhance_increasing_args),
    "Contrast": OpDef(contrast, _enhance_args),
    "ContrastIncreasing": OpDef(contrast, _enhance_increasing_args),
    "Brightness": OpDef(brightness, _enhance_args),
    "BrightnessIncreasing": OpDef(brightness, _enhance_increasing_args),
    "Sharpness": OpDef(sharpness, _enhance_args),
    "SharpnessIncreasing": OpDef(sharpness, _enhance_increasing_args),
    "ShearX": OpDef(shear_x, _shear_args),
    "ShearY": OpDef(shear_y, _shear_args),
    "TranslateXRel": OpDef(translate_x_rel, _translate_rel_args),
    "TranslateYRel": OpDef(translate_y_rel, _translate_rel_args),
}

RAND_TRANSFORMS: tuple[str, ...] = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd",
    "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel",
)  # fmt: skip
RAND_INCREASING_TRANSFORMS: tuple[str, ...] = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing", "SolarizeAdd",
    "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing",
    "ShearX", "ShearY", "TranslateXRel", "TranslateYRel",
)  # fmt: skip


@dataclass(frozen=True)
class DrawnOp:
    """One op as drawn for a clip: its name and arguments (the same for every frame)."""

    name: str
    args: tuple


class RandAugment:
    """Clip-level RandAugment: the same operations on every frame.

    Clip-level RandAugment: ``__call__(clip, rng)`` with clip a uint8 tensor (T, C, H, W)
    (or a list of RGB PIL images); returns the same kind, every frame transformed alike.
    """

    def __init__(
        self,
        magnitude: float = 9.0,
        num_layers: int = 2,
        magnitude_std: float = 0.0,
        increasing: bool = False,
        prob: float = 0.5,
        interpolation: str = "bicubic",
        fill: tuple[int, int, int] = FILL,
    ) -> None:
        if interpolation not in _INTERPOLATION:
            raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATION)}, got {interpolation!r}")
        self.magnitude = float(magnitude)
        self.num_layers = int(num_layers)
        self.magnitude_std = float(magnitude_std)
        self.names = RAND_INCREASING_TRANSFORMS if increasing else RAND_TRANSFORMS
        self.prob = float(prob)
        self.resample = _INTERPOLATION[interpolation]
        self.fill = tuple(fill)

    @classmethod
    def from_config(cls, config: str = DEFAULT_CONFIG, interpolation: str = "bicubic") -> RandAugment:
        """Build from a timm configuration string.

        Parse a timm string such as ``rand-m7-n4-mstd0.5-inc1`` (m: magnitude, n: ops per
        clip, mstd: magnitude noise std, inc: increasing op set).
        """
        parts = config.split("-")
        if parts[0] != "rand":
            raise ValueError(f"RandAugment config must start with 'rand', got {config!r}")
        kwargs: dict = {"magnitude": MAX_LEVEL, "num_layers": 2, "interpolation": interpolation}
        for part in parts[1:]:
            split = re.split(r"(\d.*)", part)
            if len(split) < 2:
                raise ValueError(f"RandAugment config {config!r}: cannot parse {part!r}")
            key, val = split[:2]
            if key == "m":
                kwargs["magnitude"] = float(val)
            elif key == "n":
                kwargs["num_layers"] = int(val)
            elif key == "mstd":
                kwargs["magnitude_std"] = float(val)
            elif key == "inc":
                kwargs["increasing"] = bool(int(val))
            else:
                raise ValueError(f"RandAugment config {config!r}: unsupported key {key!r} (use m, n, mstd, inc)")
        return cls(**kwargs)

    def sample(self, rng: np.random.Generator) -> list[DrawnOp]:
        """Draw the ops (with replacement), skip each with prob 1 - ``prob``, draw magnitudes and signs."""
        drawn = []
        for i in rng.integers(len(self.names), size=self.num_layers):
            name = self.names[int(i)]
            if self.prob < 1.0 and rng.random() > self.prob:
                continue
            level = self.magnitude
            if self.magnitude_std > 0:
                level = float(rng.normal(level, self.magnitude_std))
            level = min(MAX_LEVEL, max(0.0, level))
            drawn.append(DrawnOp(name, OPS[name].level_to_args(level, rng)))
        return drawn

    def apply(self, frames: Sequence[Image.Image], ops: Sequence[DrawnOp]) -> list[Image.Image]:
        """Apply already-drawn ops to every frame."""
        out = list(frames)
        for op in ops:
            fn = OPS[op.name].fn
            out = [fn(img, *op.args, resample=self.resample, fill=self.fill) for img in out]
        return out

    def __call__(self, clip: torch.Tensor | list[Image.Image], rng: np.random.Generator):
        """Apply the sampled operations to every frame of ``clip`` (the same ones, with the same arguments)."""
        ops = self.sample(rng)
        if not ops:
            return clip
        if isinstance(clip, list):
            return self.apply(clip, ops)
        if clip.dtype != torch.uint8 or clip.ndim != 4 or clip.shape[1] != 3:
            raise TypeError(f"RandAugment expects a uint8 RGB clip (T, 3, H, W), got {clip.dtype} {tuple(clip.shape)}")
        array = rearrange(clip, "t c h w -> t h w c").numpy()  # (T, H, W, 3)
        frames = self.apply([Image.fromarray(f) for f in array], ops)
        out = np.stack([np.asarray(f) for f in frames])  # (T, H, W, 3)
        return rearrange(torch.from_numpy(out), "t h w c -> t c h w").contiguous()

    def __repr__(self) -> str:
        return (
            f"RandAugment(m={self.magnitude}, n={self.num_layers}, mstd={self.magnitude_std}, "
            f"ops={len(self.names)}, p={self.prob})"
        )
