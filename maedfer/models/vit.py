"""Plain ViT with global space-time attention (the VideoMAE ViT-B baseline at 160 px)."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from maedfer.constants import IMG_SIZE, NUM_FRAMES, PATCH_SIZE, TUBELET_SIZE
from maedfer.models.encoder import VideoEncoder, drop_path_rates
from maedfer.models.layers import Block
from maedfer.models.outputs import EncoderOutput


class ViTEncoder(VideoEncoder):
    """Plain ViT encoder; for masking the whole frame is one window. Input: normalised clips (B, 3, T, H, W)."""

    def __init__(
        self,
        img_size: int = IMG_SIZE,
        patch_size: int = PATCH_SIZE,
        num_frames: int = NUM_FRAMES,
        tubelet_size: int = TUBELET_SIZE,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
        final_norm: bool = False,
    ) -> None:
        super().__init__(img_size, patch_size, num_frames, tubelet_size, in_chans, embed_dim, depth)
        norm_layer = partial(nn.LayerNorm, eps=norm_eps)
        # For masking, the whole frame is one window (plain tube masking).
        self.region_size = self.patch_embed.grid
        dpr = drop_path_rates(drop_path_rate, depth)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_path=dpr[i], norm_layer=norm_layer)
            for i in range(depth)
        )
        self.norm = norm_layer(embed_dim) if final_norm else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> EncoderOutput:
        """Encode all tokens, or only the visible ones of ``mask`` (kept in raster order)."""
        # x: (B, 3, T, H, W); mask: (B, L) bool, True = masked, same count per sample
        x = self.embed(x)  # (B, L, C)
        b, length, c = x.shape
        positions = torch.arange(length, device=x.device).expand(b, -1)  # (B, L)
        if mask is not None:
            nv = int((~mask[0]).sum())
            positions = torch.argsort(mask.to(torch.int8), dim=1, stable=True)[:, :nv]  # (B, Nv), raster order
            if not bool((~mask).sum(1).eq(nv).all()):
                raise ValueError("every sample's mask must leave the same number of visible tokens")
            x = torch.gather(x, 1, positions[..., None].expand(-1, -1, c))  # (B, Nv, C)
        for blk in self.blocks:
            x = blk(x)
        return EncoderOutput(tokens=self.norm(x), positions=positions, region_tokens=None)
