"""RandAugment's ops on uint8 tensors (N, 3, H, W), on any device, matching Pillow's arithmetic.

Every op works frame by frame with per-frame arguments (a tensor (N,) or (N, 6)), so one call serves
the frames of many clips, each with its own drawn arguments. :func:`apply_ops_batch` runs the drawn ops
of a whole batch of clips (B, T, 3, H, W): at each of RandAugment's layers it groups the clips by op and
makes one call per op for the group (a few calls per layer, not one per clip).

Agreement with the Pillow ops of :mod:`maedfer.data.rand_augment` on CPU tensors (tests/test_gpu_data.py):

* exact: Invert, Posterize, Solarize, SolarizeAdd, AutoContrast, Equalize (lookup tables from the same
  histograms), and the affine ops ShearX/Y, TranslateX/YRel, Rotate: Pillow's affine bicubic (its
  ``a = -1`` cubic in Pillow's Horner form, edge-clamped taps, fill where the source point falls
  outside the image, truncation) evaluated in float64 as Pillow does;
* Color, Contrast, Brightness (Pillow's ``Image.blend`` in float32 with truncation) and Sharpness
  (the SMOOTH 3 x 3 filter, rounded, borders copied): exact on the test images; the stated tolerance is
  1 grey level (a float rounding on another device or Pillow build may move a truncation by one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from einops import rearrange

from maedfer.data.rand_augment import FILL, DrawnOp

Frames = torch.Tensor  # uint8 (N, 3, H, W)
AFFINE_CHUNK = 128  # frames per affine call (160 x 160: ~80 MB per float64 temporary)


def _per_frame(frames: Frames, value: float | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A scalar or (N,) argument as (N, 1, 1, 1) of ``dtype`` on the frames' device."""
    t = torch.as_tensor(value, dtype=dtype).to(frames.device)
    return t.expand(frames.shape[0]).reshape(-1, 1, 1, 1) if t.ndim == 0 else t.reshape(-1, 1, 1, 1)


def _plane_index(frames: Frames) -> torch.Tensor:
    """int64 (N*3, H*W): each pixel's value plus 256 x its (frame, channel) plane number."""
    flat = rearrange(frames, "n c h w -> (n c) (h w)").long()
    return flat + 256 * torch.arange(flat.shape[0], device=frames.device).unsqueeze(1)


def _lut(frames: Frames, lut: torch.Tensor) -> Frames:
    """Apply per-(frame, channel) lookup tables ``lut`` (N*3, 256) to uint8 (N, 3, H, W)."""
    n, c, h, w = frames.shape
    out = torch.take(lut.to(torch.uint8).reshape(-1), _plane_index(frames))  # (N*3, H*W)
    return rearrange(out, "(n c) (h w) -> n c h w", n=n, c=c, h=h, w=w)


def _histograms(frames: Frames) -> torch.Tensor:
    """Per-(frame, channel) histograms (N*3, 256) int64."""
    planes = frames.shape[0] * frames.shape[1]
    return torch.bincount(_plane_index(frames).reshape(-1), minlength=planes * 256).view(planes, 256)


def invert(frames: Frames) -> Frames:
    """255 - x."""
    return 255 - frames


def posterize(frames: Frames, bits: int | torch.Tensor) -> Frames:
    """Keep the ``bits`` most significant bits (8 or more: unchanged)."""
    bits = _per_frame(frames, bits, torch.int64).clamp(0, 8)
    mask = (255 - ((1 << (8 - bits)) - 1)).to(torch.uint8)  # ~(2^(8 - bits) - 1) & 0xFF
    return frames & mask


def solarize(frames: Frames, thresh: int | torch.Tensor) -> Frames:
    """Invert the pixels at or above ``thresh`` (256: none)."""
    thresh = _per_frame(frames, thresh, torch.int32)  # int32: a uint8 threshold would wrap 256 to 0
    return torch.where(frames.to(torch.int32) >= thresh, 255 - frames, frames)


def solarize_add(frames: Frames, add: int | torch.Tensor, thresh: int = 128) -> Frames:
    """Add ``add`` (clipped to 255) to the pixels below ``thresh``."""
    x = frames.to(torch.int32)
    added = (x + _per_frame(frames, add, torch.int32)).clamp_(max=255)
    return torch.where(x < thresh, added, x).to(torch.uint8)


def auto_contrast(frames: Frames) -> Frames:
    """Stretch each channel of each frame from [lo, hi] to [0, 255] (Pillow's ``int(ix * scale + offset)``)."""
    hist = _histograms(frames)  # (N*3, 256)
    levels = torch.arange(256, device=frames.device, dtype=torch.float64)
    present = hist > 0
    lo = torch.where(present, levels, torch.full_like(levels, 256.0)).amin(1, keepdim=True)  # (N*3, 1)
    hi = torch.where(present, levels, torch.full_like(levels, -1.0)).amax(1, keepdim=True)
    stretch = hi > lo
    scale = 255.0 / torch.where(stretch, hi - lo, torch.ones_like(hi))
    lut = torch.trunc(levels * scale - lo * scale).clamp(0, 255)
    return _lut(frames, torch.where(stretch, lut, levels.expand_as(lut)))


def equalize(frames: Frames) -> Frames:
    """Pillow's histogram equalisation per channel of each frame."""
    hist = _histograms(frames)  # (N*3, 256)
    nonzero = hist > 0
    count = nonzero.sum(1, keepdim=True)
    last_idx = torch.where(nonzero, torch.arange(256, device=hist.device), -1).amax(1, keepdim=True).clamp(min=0)
    step = (hist.sum(1, keepdim=True) - hist.gather(1, last_idx)) // 255  # (N*3, 1)
    identity = (count <= 1) | (step == 0)
    safe = torch.where(identity, torch.ones_like(step), step)
    before = torch.cumsum(hist, 1) - hist  # counts below each level
    lut = ((safe // 2 + before) // safe).clamp(0, 255)
    return _lut(frames, torch.where(identity, torch.arange(256, device=hist.device).expand_as(lut), lut))


def _grey(frames: Frames) -> torch.Tensor:
    """Pillow's RGB -> L: (R 19595 + G 38470 + B 7471 + 32768) >> 16, int32 (N, 1, H, W)."""
    x = frames.to(torch.int32)
    return (x[:, 0:1] * 19595 + x[:, 1:2] * 38470 + x[:, 2:3] * 7471 + 0x8000) >> 16


def _blend(degenerate: torch.Tensor, frames: Frames, factor: float | torch.Tensor) -> Frames:
    """Pillow's ``Image.blend(degenerate, image, factor)``: float32 maths, truncated, clipped."""
    alpha = _per_frame(frames, factor, torch.float32)
    d = degenerate.to(torch.float32)
    out = d + alpha * (frames.to(torch.float32) - d)
    return out.clamp_(0, 255).trunc_().to(torch.uint8)


def color(frames: Frames, factor: float | torch.Tensor) -> Frames:
    """Blend with the frame's greyscale version."""
    return _blend(_grey(frames).expand_as(frames), frames, factor)


def contrast(frames: Frames, factor: float | torch.Tensor) -> Frames:
    """Blend with the frame's mean grey level (Pillow's ``int(mean + 0.5)``)."""
    mean = torch.floor(_grey(frames).to(torch.float64).mean(dim=(1, 2, 3), keepdim=True) + 0.5)  # (N, 1, 1, 1)
    return _blend(mean.expand_as(frames), frames, factor)


def brightness(frames: Frames, factor: float | torch.Tensor) -> Frames:
    """Blend with black."""
    return _blend(torch.zeros_like(frames), frames, factor)


def sharpness(frames: Frames, factor: float | torch.Tensor) -> Frames:
    """Blend with Pillow's SMOOTH-filtered frame (3 x 3 kernel [1 1 1; 1 5 1; 1 1 1] / 13, rounded, borders kept)."""
    x = frames.to(torch.int32)
    h, w = x.shape[-2:]
    total = 4 * x[..., 1:-1, 1:-1]  # centre weight 5 = 4 + the 1 of the 3 x 3 sum below
    for dy in range(3):
        for dx in range(3):
            total = total + x[..., dy : dy + h - 2, dx : dx + w - 2]
    degenerate = x.clone()
    degenerate[..., 1:-1, 1:-1] = torch.div(2 * total + 13, 26, rounding_mode="floor")  # round(total / 13)
    return _blend(degenerate, frames, factor)


# ----------------------------------------------------------------------------------------------
# Affine ops: Pillow's inverse mapping, source point of output pixel (x, y) = M (x + .5, y + .5, 1)


def _cubic(v1: torch.Tensor, v2: torch.Tensor, v3: torch.Tensor, v4: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Pillow's bicubic step (its a = -1 cubic, Horner form, exact on flat areas); overwrites v3.

    ``v2 + d (p2 + d (p3 + d p4))`` with p2 = v3 - v1, p3 = 2 (v1 - v2) + v3 - v4, p4 = v2 - v1 - v3 + v4,
    each evaluated in Pillow's order (so the float64 result is Pillow's, bit for bit).
    """
    p4 = v2 - v1
    p4.sub_(v3).add_(v4)
    p3 = (v1 - v2).mul_(2).add_(v3).sub_(v4)  # (2 (v1 - v2) + v3) - v4
    p2 = v3.sub_(v1)
    return p4.mul_(d).add_(p3).mul_(d).add_(p2).mul_(d).add_(v2)


def affine(frames: Frames, matrix: Sequence[float] | torch.Tensor, fill: Sequence[int] = FILL) -> Frames:
    """Pillow's ``Image.transform(size, AFFINE, matrix, BICUBIC, fillcolor=fill)``; matrix (6,) or per frame (N, 6).

    When no frame's matrix moves rows (ShearX, TranslateX) the vertical step has d = 0 and gives the
    centre row exactly, so only that row is interpolated; when none moves columns (ShearY, TranslateY)
    the horizontal step gives the centre tap exactly: the same values, a quarter of the work.
    """
    n, c, h, w = frames.shape
    dev = frames.device
    m_host = torch.as_tensor(matrix, dtype=torch.float64).cpu().reshape(-1, 6)
    rows_fixed = bool((m_host[:, 3:] == torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)).all())
    cols_fixed = bool((m_host[:, :3] == torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)).all())
    m = m_host.to(dev).expand(n, 6)
    col = lambda k: m[:, k].view(n, 1, 1)  # noqa: E731
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64, device=dev) + 0.5,
                            torch.arange(w, dtype=torch.float64, device=dev) + 0.5, indexing="ij")  # (H, W)
    xs = col(0) * xx + col(1) * yy + col(2)  # (N, H, W)
    ys = col(3) * xx + col(4) * yy + col(5)
    valid = ((xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)).unsqueeze(1)  # (N, 1, H, W)
    xi, yi = xs - 0.5, ys - 0.5
    x0, y0 = xi.floor(), yi.floor()
    dx, dy = (xi - x0).unsqueeze(1), (yi - y0).unsqueeze(1)  # (N, 1, H, W)
    flat = frames.reshape(n, c, h * w)  # uint8: gather the taps at 1 byte each, then widen

    def tap(iy: torch.Tensor, ix: torch.Tensor) -> torch.Tensor:
        idx = (iy.clamp(0, h - 1).long() * w + ix.clamp(0, w - 1).long()).view(n, 1, h * w).expand(n, c, h * w)
        return flat.gather(2, idx).view(n, c, h, w).to(torch.float64)

    def row(j: int) -> torch.Tensor:
        if cols_fixed:
            return tap(y0 + j, x0)
        return _cubic(*(tap(y0 + j, x0 + i) for i in range(-1, 3)), dx)

    out = row(0) if rows_fixed else _cubic(*(row(j) for j in range(-1, 3)), dy)
    out = out.clamp_(0, 255).trunc_()  # (N, C, H, W)
    fill_t = torch.tensor(list(fill), dtype=torch.float64, device=dev).view(1, c, 1, 1)
    return torch.where(valid, out, fill_t).to(torch.uint8)


def rotate_matrix(degrees: float, width: int, height: int) -> tuple[float, ...]:
    """The inverse affine matrix of Pillow's ``Image.rotate(degrees)`` about the centre (no expand)."""
    angle = -math.radians(degrees)
    m = [round(math.cos(angle), 15), round(math.sin(angle), 15), 0.0,
         round(-math.sin(angle), 15), round(math.cos(angle), 15), 0.0]
    cx, cy = width / 2.0, height / 2.0
    m[2] = m[0] * -cx + m[1] * -cy + cx
    m[5] = m[3] * -cx + m[4] * -cy + cy
    return tuple(m)


_AFFINE: dict[str, Callable[[float, int, int], tuple[float, ...]]] = {
    "ShearX": lambda v, w, h: (1, v, 0, 0, 1, 0),
    "ShearY": lambda v, w, h: (1, 0, 0, v, 1, 0),
    "TranslateXRel": lambda v, w, h: (1, 0, v * w, 0, 1, 0),
    "TranslateYRel": lambda v, w, h: (1, 0, 0, 0, 1, v * h),
    "Rotate": rotate_matrix,
}

# op name -> (function, its argument's dtype or None when it takes none)
_PIXEL: dict[str, tuple[Callable[..., Frames], torch.dtype | None]] = {
    "AutoContrast": (auto_contrast, None), "Equalize": (equalize, None), "Invert": (invert, None),
    "Posterize": (posterize, torch.int64), "PosterizeIncreasing": (posterize, torch.int64),
    "Solarize": (solarize, torch.int64), "SolarizeIncreasing": (solarize, torch.int64),
    "SolarizeAdd": (solarize_add, torch.int64),
    "Color": (color, torch.float64), "ColorIncreasing": (color, torch.float64),
    "Contrast": (contrast, torch.float64), "ContrastIncreasing": (contrast, torch.float64),
    "Brightness": (brightness, torch.float64), "BrightnessIncreasing": (brightness, torch.float64),
    "Sharpness": (sharpness, torch.float64), "SharpnessIncreasing": (sharpness, torch.float64),
}  # fmt: skip

OP_NAMES: frozenset[str] = frozenset(_AFFINE) | frozenset(_PIXEL)


def _family(name: str) -> object:
    """Ops that one call can serve together: affine ops by the axis they move; otherwise the same function."""
    if name in _AFFINE:
        return {"ShearX": "affine-x", "TranslateXRel": "affine-x", "ShearY": "affine-y",
                "TranslateYRel": "affine-y"}.get(name, "affine")
    if name not in _PIXEL:
        raise ValueError(f"RandAugment op {name!r} has no tensor version (known: {sorted(OP_NAMES)})")
    return _PIXEL[name][0]


def _run(frames: Frames, ops: Sequence[DrawnOp], per_clip: int, fill: Sequence[int]) -> Frames:
    """Ops of one family, op k on frames [k * per_clip, (k + 1) * per_clip)."""
    h, w = frames.shape[-2:]
    if str(_family(ops[0].name)).startswith("affine"):
        m = torch.tensor([_AFFINE[o.name](float(o.args[0]), w, h) for o in ops], dtype=torch.float64)
        m = m.repeat_interleave(per_clip, 0)
        # float64 temporaries of ~10 x frames x 3 x H x W: bounded by chunks of AFFINE_CHUNK frames
        return torch.cat([affine(frames[k : k + AFFINE_CHUNK], m[k : k + AFFINE_CHUNK], fill)
                          for k in range(0, frames.shape[0], AFFINE_CHUNK)])
    fn, dtype = _PIXEL[ops[0].name]
    if dtype is None:
        return fn(frames)
    return fn(frames, torch.tensor([o.args[0] for o in ops], dtype=dtype).repeat_interleave(per_clip))


def apply_op(frames: Frames, op: DrawnOp, fill: Sequence[int] = FILL) -> Frames:
    """Apply one drawn op to uint8 frames (N, 3, H, W) (all with the op's arguments)."""
    if op.name in _AFFINE:
        return affine(frames, _AFFINE[op.name](float(op.args[0]), frames.shape[-1], frames.shape[-2]), fill)
    _family(op.name)  # names an unknown op
    fn, dtype = _PIXEL[op.name]
    return fn(frames) if dtype is None else fn(frames, *op.args)


def apply_ops(frames: Frames, ops: Sequence[DrawnOp], fill: Sequence[int] = FILL) -> Frames:
    """Apply a clip's drawn ops in order to all its frames (N, 3, H, W)."""
    for op in ops:
        frames = apply_op(frames, op, fill)
    return frames


def apply_ops_batch(clips: torch.Tensor, ops: Sequence[Sequence[DrawnOp]], fill: Sequence[int] = FILL) -> torch.Tensor:
    """Each clip's drawn ops on uint8 clips (B, T, 3, H, W): one call per (layer, op family) present."""
    b, t = clips.shape[:2]
    if len(ops) != b:
        raise ValueError(f"apply_ops_batch: {len(ops)} op lists for {b} clips")
    out = clips.clone()
    for layer in range(max((len(o) for o in ops), default=0)):
        groups: dict[object, list[int]] = {}
        for i, clip_ops in enumerate(ops):
            if layer < len(clip_ops):
                groups.setdefault(_family(clip_ops[layer].name), []).append(i)
        for members in groups.values():
            idx = torch.tensor(members, device=clips.device)
            frames = out.index_select(0, idx).flatten(0, 1)  # (n*T, 3, H, W)
            done = _run(frames, [ops[i][layer] for i in members], t, fill)
            out.index_copy_(0, idx, done.view(len(members), t, *done.shape[1:]))
    return out
