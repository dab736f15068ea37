"""Video classifier: an encoder, mean pooling, LayerNorm (fc_norm) and a linear head."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from maedfer.models.init import trunc_normal_
from maedfer.models.layer_groups import EncoderLayerGroups

PoolTokens = Literal["region", "local"]


class VideoClassifier(EncoderLayerGroups, nn.Module):
    """An encoder with a pooled, normalised linear head.

    Pools the encoder's representative tokens (``pool="region"``, the paper's default) or its
    local patch tokens (``pool="local"``, Table 11's "original tokens"; the only choice for ViT).
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        pool: PoolTokens = "region",
        head_init_scale: float = 0.001,
        head_drop: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if pool not in ("region", "local"):
            raise ValueError(f"pool must be 'region' or 'local', got {pool!r}")
        if pool == "region" and not hasattr(encoder, "region_tokens"):
            raise ValueError(f"{type(encoder).__name__} has no representative tokens; use pool='local'")
        self.encoder = encoder
        self.pool = pool
        self.num_classes = num_classes
        dim = encoder.embed_dim
        self.fc_norm = nn.LayerNorm(dim, eps=norm_eps)
        self.head_drop = nn.Dropout(head_drop)
        self.head = nn.Linear(dim, num_classes)
        self.head_init_scale = head_init_scale

    def init_weights(self) -> None:
        """The authors' fine-tuning init: trunc_normal(0.02) everywhere, head scaled by head_init_scale."""
        self.encoder.init_weights("finetune")
        nn.init.ones_(self.fc_norm.weight)
        nn.init.zeros_(self.fc_norm.bias)
        trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        with torch.no_grad():
            self.head.weight.mul_(self.head_init_scale)
            self.head.bias.mul_(self.head_init_scale)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled, normalised features (B, C) of clips (B, 3, T, H, W)."""
        # x: (B, 3, T, H, W) -> (B, C) pooled, normalised clip embedding
        out = self.encoder(x)
        tokens = out.region_tokens if self.pool == "region" else out.tokens  # (B, M or L, C)
        return self.fc_norm(tokens.mean(1))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Class logits (B, K) of pooled features (dropout, then the linear head)."""
        return self.head(self.head_drop(features))  # (B, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, K) of clips (B, 3, T, H, W)."""
        return self.forward_head(self.forward_features(x))
