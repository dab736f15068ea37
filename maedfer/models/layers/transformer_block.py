"""A plain pre-norm Transformer block (ViT encoder and MAE decoder)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from maedfer.models.layers.attention import SelfAttention
from maedfer.models.layers.drop_path import DropPath
from maedfer.models.layers.mlp import Mlp


class Block(nn.Module):
    """Pre-norm Transformer block: self-attention and MLP, each residual with stochastic depth."""
    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = SelfAttention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, C) -> (B, L, C)."""
        # x: (B, L, C)
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))
