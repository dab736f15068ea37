"""Plain ViT with global space-time attention (the VideoMAE ViT-B baseline at 160 px)."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from maedfer.models.layers import Block, PatchEmbed3D, sincos_table
from maedfer.models.outputs import EncoderOutput


class ViTEncoder(nn.Module):
    def __init__(
        self,
        img_size: int = 160,
        patch_size: int = 16,
        num_frames: int = 16,
        tubelet_size: int = 2,
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
        super().__init__()
        norm_layer = partial(nn.LayerNorm, eps=norm_eps)
        self.embed_dim = embed_dim
        self.depth = depth
        self.patch_embed = PatchEmbed3D(img_size, patch_size, num_frames, tubelet_size, in_chans, embed_dim)
        grid = self.patch_embed.grid
        # For masking, the whole frame is one window (plain tube masking).
        self.region_size = grid
        self.register_buffer("pos_embed", sincos_table(self.patch_embed.num_patches, embed_dim), persistent=False)
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # linear 0 -> rate
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_path=dpr[i], norm_layer=norm_layer)
            for i in range(depth)
        )
        self.norm = norm_layer(embed_dim) if final_norm else nn.Identity()

    def init_weights(self, scheme: str) -> None:
        from maedfer.models.init import init_weights

        init_weights(self, scheme)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> EncoderOutput:
        # x: (B, 3, T, H, W); mask: (B, L) bool, True = masked, same count per sample
        x = self.patch_embed(x) + self.pos_embed.to(x.dtype)  # (B, L, C)
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

    def no_weight_decay(self) -> set[str]:
        return set()

    def layer_id(self, name: str) -> int:
        if name.startswith("patch_embed"):
            return 0
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        return self.depth + 1
