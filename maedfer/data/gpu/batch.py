"""The device path's batch: JPEG bytes + per-clip plans in, the model's float batch out.

A dataset with ``decode="device"`` returns a :class:`ClipBytes` per sample (the distinct frames' JPEG
bytes, the clip's :class:`~maedfer.data.gpu.plan.ClipPlan`, label, index); :func:`collate_device`
keeps the bytes as a list (:class:`DeviceBatch`); :class:`BatchAugment` decodes the whole batch on the
training device and applies the pipeline's steps with each clip's drawn parameters::

    augment = BatchAugment(train_set.transform, device, load_size=train_set.load_size_for_device)
    for batch in loader:                      # DeviceBatch
        video = augment(batch)                # float32 (B, C, T, H, W) on device
        label = batch.labels.to(device)

The steps are the CPU transforms' own code on device tensors (their ``apply`` with the drawn
parameters; RandAugment's Pillow ops rewritten as tensor maths), so on CPU tensors the result equals
the CPU path's (tests/test_gpu_data.py). Decoding is one call for the batch; RandAugment is a few calls
per layer for the whole batch (clips grouped by op, :func:`~maedfer.data.gpu.rand_augment.apply_ops_batch`);
Normalize and the layout change run on the stacked batch; crops, flips and erasing boxes run clip by clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange

from maedfer.data.erasing import RandomErasing
from maedfer.data.gpu.decode import decode_batch
from maedfer.data.gpu.plan import ClipPlan, check_device_pipeline
from maedfer.data.gpu.rand_augment import apply_ops, apply_ops_batch
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
    _resize,
    pil_bilinear_resize,
)


@dataclass
class ClipBytes:
    """One sample of the device path: the clip's distinct frames as JPEG bytes and its plan.

    ``data`` holds the frames' JPEG files back to back (one buffer: one shared-memory handle per sample
    between a loader worker and the main process), ``sizes`` their lengths in frame order.
    """

    data: torch.Tensor  # 1-D uint8
    sizes: list[int]
    plan: ClipPlan
    label: int
    index: int
    name: str

    @classmethod
    def of(cls, jpegs: list[bytes], plan: ClipPlan, label: int, index: int, name: str) -> ClipBytes:
        """Pack the encoded frames ``jpegs`` into one buffer."""
        data = torch.frombuffer(bytearray(b"".join(jpegs)), dtype=torch.uint8)
        return cls(data, [len(b) for b in jpegs], plan, label, index, name)


@dataclass
class DeviceBatch:
    """A collated batch of :class:`ClipBytes`: every frame's bytes in one buffer, plans as a list."""

    data: torch.Tensor  # 1-D uint8, all frames of all clips back to back
    sizes: list[int]  # bytes per frame
    counts: list[int]  # frames per clip
    plans: list[ClipPlan]
    labels: torch.Tensor  # (B,) int64
    indices: torch.Tensor  # (B,) int64
    names: list[str]

    def __len__(self) -> int:
        return len(self.plans)

    @property
    def jpegs(self) -> list[torch.Tensor]:
        """Each frame's JPEG bytes: 1-D uint8 views of ``data``."""
        return list(self.data.split(self.sizes))

    def pin_memory(self) -> DeviceBatch:
        """Pin the byte buffer (a DataLoader with ``pin_memory=True`` calls this)."""
        self.data = self.data.pin_memory()
        return self


def collate_device(samples: list[ClipBytes]) -> DeviceBatch:
    """Collate device-path samples: bytes into one buffer; labels and indices become tensors."""
    return DeviceBatch(
        data=torch.cat([s.data for s in samples]),
        sizes=[n for s in samples for n in s.sizes],
        counts=[len(s.sizes) for s in samples],
        plans=[s.plan for s in samples],
        labels=torch.as_tensor([s.label for s in samples], dtype=torch.int64),
        indices=torch.as_tensor([s.index for s in samples], dtype=torch.int64),
        names=[s.name for s in samples],
    )


def apply_step(t: object, clip: torch.Tensor, entry: object) -> torch.Tensor:
    """One pipeline step on one clip (T, C, H, W) with its drawn parameter ``entry``."""
    if isinstance(t, ResizeShortSide | CenterCrop | Normalize | ToModelLayout):
        return t(clip)  # no draws; tensor code on any device
    if isinstance(t, RandAugment):
        return apply_ops(clip, entry, t.fill) if entry else clip
    if isinstance(t, RandomResizedCrop | GroupMultiScaleCrop):
        return t.apply(clip, entry)
    if isinstance(t, RandomHorizontalFlip):
        return clip.flip(-1) if entry else clip
    if isinstance(t, RandomErasing):
        boxes, seed = entry
        return t.apply(clip, boxes, seed)
    raise TypeError(f"no device version of {t!r}")


class BatchAugment:
    """Turn a :class:`DeviceBatch` into the model's float batch (B, C, T, H, W) on ``device``.

    ``transform`` is the dataset's CPU pipeline (its steps' settings are used; the draws are in the plans).
    ``load_size``: the dataset's load-time resize (``pil_bilinear`` indices), or None. On CPU it is
    Pillow's bilinear resize as in the CPU path; on a GPU torchvision's antialiased bilinear
    (within a grey level or two of Pillow's).
    """

    def __init__(self, transform: Compose, device: torch.device | str, load_size: int | None = None) -> None:
        check_device_pipeline(transform)
        self.transform = transform
        self.device = torch.device(device)
        self.load_size = load_size

    def frames(self, batch: DeviceBatch) -> list[torch.Tensor]:
        """Decoded clips (T, 3, H, W) uint8 on the device, frames in the plans' order."""
        decoded = decode_batch(batch.jpegs, self.device, batch.names, batch.counts)
        clips, start = [], 0
        for count, plan in zip(batch.counts, batch.plans, strict=True):
            frames = torch.stack(decoded[start : start + count])  # (U, 3, H, W)
            start += count
            if self.load_size is not None:
                frames = self._load_resize(frames)
            inverse = torch.from_numpy(plan.inverse).to(frames.device)
            clips.append(frames.index_select(0, inverse))  # (T, 3, H, W)
        return clips

    def _load_resize(self, frames: torch.Tensor) -> torch.Tensor:
        size = int(self.load_size)
        if frames.device.type == "cpu":
            return pil_bilinear_resize(frames, size)
        if tuple(frames.shape[-2:]) == (size, size):
            return frames
        return _resize(frames, (size, size))

    @torch.no_grad()
    def __call__(self, batch: DeviceBatch) -> torch.Tensor:
        """float32 (B, C, T, H, W) on the device."""
        clips = self.frames(batch)
        for k, t in enumerate(self.transform.transforms):
            entries = [plan.steps[k] for plan in batch.plans]
            same = len({(c.shape, c.dtype) for c in clips}) == 1
            if same and isinstance(t, RandAugment):
                clips = list(apply_ops_batch(torch.stack(clips), entries, t.fill).unbind(0))
            elif same and isinstance(t, Normalize):
                stacked = torch.stack(clips)  # (B, T, C, H, W)
                clips = list(t(stacked.flatten(0, 1)).view(stacked.shape).unbind(0))
            elif same and isinstance(t, ToModelLayout):
                clips = list(rearrange(torch.stack(clips).float(), "b t c h w -> b c t h w").contiguous().unbind(0))
            else:
                clips = [apply_step(t, clip, entry) for clip, entry in zip(clips, entries, strict=True)]
        return torch.stack(clips)
