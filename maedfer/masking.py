"""Tube-window masking (MAE-DFER).

Tube-window masking (MAE-DFER): the same random patches of every spatial window stay visible
in every temporal slot, and every window keeps the same number of visible patches.

The window is the encoder's region footprint in (h, w) (for a plain ViT, the whole frame,
which is VideoMAE's tube masking), so every LGI-Former region receives the same number of
visible tokens by construction. Build the generator from the encoder with
:meth:`TubeWindowMaskGenerator.for_encoder` rather than by hand.
"""

from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import nn


class TubeWindowMaskGenerator:
    """Boolean masks (B, L), True = masked, that keep the same patches of every window visible in every slot."""
    def __init__(self, grid: tuple[int, int, int], window: tuple[int, int], mask_ratio: float) -> None:
        t, h, w = grid
        wh, ww = window
        if wh <= 0 or ww <= 0 or h % wh or w % ww:
            raise ValueError(f"mask window {window} does not tile the {h}x{w} patch grid")
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask ratio must be in [0, 1), got {mask_ratio}")
        self.grid = (t, h, w)
        self.window = (wh, ww)
        self.mask_ratio = mask_ratio
        self.patches_per_window = wh * ww
        # Same rounding as the authors' generator: masked = int(ratio * window patches).
        self.num_visible_per_window = self.patches_per_window - int(mask_ratio * self.patches_per_window)

    @classmethod
    def for_encoder(cls, encoder: nn.Module, mask_ratio: float) -> TubeWindowMaskGenerator:
        """The generator whose window is ``encoder``'s region footprint in (h, w)."""
        grid = encoder.patch_embed.grid
        _, rh, rw = encoder.region_size
        return cls(grid, (rh, rw), mask_ratio)

    @property
    def num_patches(self) -> int:
        """Tokens of the whole grid."""
        return self.grid[0] * self.grid[1] * self.grid[2]

    @property
    def num_visible(self) -> int:
        """Visible tokens per sample."""
        t, h, w = self.grid
        return t * (h // self.window[0]) * (w // self.window[1]) * self.num_visible_per_window

    def __call__(
        self, batch_size: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """(B, L) bool mask in raster (t, h, w) order; True = masked."""
        t, h, w = self.grid
        wh, ww = self.window
        nh, nw = h // wh, w // ww
        # the draw stays on the generator's device (CPU: the same masks whatever the training device);
        # ranking and tiling run on ``device`` (the GPU builds the mask)
        noise = torch.rand(batch_size, nh * nw, wh * ww, generator=generator)  # (B, windows, P)
        if device is not None:
            noise = noise.to(device)
        rank = noise.argsort(-1).argsort(-1)  # rank of each patch within its window
        masked = rank >= self.num_visible_per_window  # (B, windows, P)
        frame = rearrange(masked, "b (nh nw) (wh ww) -> b (nh wh) (nw ww)", nh=nh, nw=nw, wh=wh, ww=ww)
        return repeat(frame, "b h w -> b (t h w)", t=t)  # (B, L)

    def __repr__(self) -> str:
        return (
            f"TubeWindowMaskGenerator(grid={self.grid}, window={self.window}, ratio={self.mask_ratio}, "
            f"visible/window={self.num_visible_per_window})"
        )
