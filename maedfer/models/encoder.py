"""What the ViT and LGI-Former encoders share: the cube embedding with fixed positions and the block bookkeeping.

Subclasses build their blocks after calling ``super().__init__``, so the random draws of module
construction (patch embedding first, then the blocks) keep their order.
"""

from __future__ import annotations

import torch
from torch import nn

from maedfer.models.init import init_weights
from maedfer.models.layers import PatchEmbed3D, sincos_table


def drop_path_rates(rate: float, depth: int) -> list[float]:
    """Stochastic-depth rate of each of ``depth`` blocks: linear from 0 to ``rate``."""
    return [rate * i / max(depth - 1, 1) for i in range(depth)]


class VideoEncoder(nn.Module):
    """Base of the encoders: ``patch_embed`` + sin-cos ``pos_embed``, weight init and layer ids for LLRD."""

    def __init__(
        self, img_size: int, patch_size: int, num_frames: int, tubelet_size: int, in_chans: int, embed_dim: int,
        depth: int,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.depth = depth
        self.patch_embed = PatchEmbed3D(img_size, patch_size, num_frames, tubelet_size, in_chans, embed_dim)
        self.register_buffer("pos_embed", sincos_table(self.patch_embed.num_patches, embed_dim), persistent=False)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Cube tokens plus their positions: (B, 3, T, H, W) -> (B, L, C) in raster order."""
        return self.patch_embed(x) + self.pos_embed.to(x.dtype)

    def init_weights(self, scheme: str) -> None:
        """Initialise Linear and LayerNorm weights with ``scheme`` ("finetune" or "pretrain")."""
        init_weights(self, scheme)

    def no_weight_decay(self) -> set[str]:
        """Names of the parameters trained without weight decay (none by default)."""
        return set()

    def layer_id(self, name: str) -> int:
        """0 for the patch embedding, i + 1 for block i, depth + 1 for the rest (layer-wise lr decay)."""
        if name.startswith("patch_embed"):
            return 0
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        return self.depth + 1
