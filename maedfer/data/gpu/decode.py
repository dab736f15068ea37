"""Batched JPEG decoding on the training device.

``torchvision.io.decode_jpeg`` on a list of encoded frames: with ``device="cuda"`` one batched nvJPEG
call, on CPU the same call as the CPU path's (identical pixels there). nvJPEG's IDCT may differ from
libjpeg-turbo's by a grey level on some pixels, so on a GPU decoded frames agree with the CPU path's
within a small tolerance, not bit for bit.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from maedfer.data.shards import ShardError


def jpeg_size(data: bytes | torch.Tensor) -> tuple[int, int]:
    """(height, width) of a JPEG from its header, without decoding it."""
    raw = bytes(data.numpy().tobytes()) if isinstance(data, torch.Tensor) else bytes(data)
    with Image.open(io.BytesIO(raw)) as img:
        return img.height, img.width


def decode_batch(jpegs: list[torch.Tensor], device: torch.device | str, names: Sequence[str] = (),
                 counts: Sequence[int] = ()) -> list[torch.Tensor]:
    """Decode every frame of a batch on ``device``: list of uint8 (3, H, W).

    ``names`` / ``counts`` (clip names and frames per clip) only serve the error message: a frame
    that does not decode raises a :class:`ShardError` naming its clip.
    """
    device = torch.device(device)
    try:
        if device.type == "cuda":
            return decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device)
        return decode_jpeg(jpegs, mode=ImageReadMode.RGB)
    except RuntimeError as exc:
        start = 0
        for name, count in zip(names, counts, strict=False):
            try:
                decode_jpeg(jpegs[start : start + count], mode=ImageReadMode.RGB)
            except RuntimeError:
                raise ShardError(f"clip {name!r} does not decode ({str(exc).splitlines()[0]}); "
                                 "re-run the ingest stage") from None
            start += count
        raise ShardError(f"a frame of the batch does not decode ({str(exc).splitlines()[0]}); "
                         "re-run the ingest stage") from None
