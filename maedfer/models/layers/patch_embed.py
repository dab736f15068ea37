"""Cube (tubelet) embedding: a Conv3d whose kernel equals its stride."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn


class PatchEmbed3D(nn.Module):
    def __init__(
        self,
        img_size: int = 160,
        patch_size: int = 16,
        num_frames: int = 16,
        tubelet_size: int = 2,
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
        # x: (B, 3, T, H, W)
        if tuple(x.shape[2:]) != (self.num_frames, self.img_size, self.img_size):
            raise ValueError(
                f"expected clips of shape (B, 3, {self.num_frames}, {self.img_size}, {self.img_size}), "
                f"got {tuple(x.shape)}"
            )
        return rearrange(self.proj(x), "b c t h w -> b (t h w) c")  # (B, L, C), raster (t, h, w) order
