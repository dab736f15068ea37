"""Cube (tubelet) embedding: a Conv3d whose kernel equals its stride."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from maedfer.constants import IMG_SIZE, NUM_FRAMES, PATCH_SIZE, TUBELET_SIZE


class PatchEmbed3D(nn.Module):
    """Split a clip into tubelet x patch x patch cubes and project each to ``embed_dim``."""

    def __init__(
        self,
        img_size: int = IMG_SIZE,
        patch_size: int = PATCH_SIZE,
        num_frames: int = NUM_FRAMES,
        tubelet_size: int = TUBELET_SIZE,
        in_chans: int = 3,
        embed_dim: int = 512,
    ) -> None:
        super().__init__()
        if img_size % patch_size or num_frames % tubelet_size:
            raise ValueError(
                f"clip {num_frames}x{img_size}x{img_size} does not divide into cubes "
                f"{tubelet_size}x{patch_size}x{patch_size}"
            )
        self.img_size, self.patch_size, self.num_frames, self.tubelet_size = (
            img_size,
            patch_size,
            num_frames,
            tubelet_size,
        )
        self.grid = (num_frames // tubelet_size, img_size // patch_size, img_size // patch_size)  # (T', H', W')
        self.num_patches = self.grid[0] * self.grid[1] * self.grid[2]
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) clip -> (B, L, C) cube tokens in raster (t, h, w) order."""
        # x: (B, 3, T, H, W)
        if tuple(x.shape[2:]) != (self.num_frames, self.img_size, self.img_size):
            raise ValueError(
                f"expected clips of shape (B, 3, {self.num_frames}, {self.img_size}, {self.img_size}), "
                f"got {tuple(x.shape)}"
            )
        return rearrange(self.proj(x), "b c t h w -> b (t h w) c")  # (B, L, C), raster (t, h, w) order
