"""Transformer feed-forward network."""

from __future__ import annotations

import torch
from torch import nn


class Mlp(nn.Module):
    """Two linear layers with GELU between (the Transformer FFN)."""
    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., C) -> (..., C)."""
        return self.drop(self.fc2(self.act(self.fc1(x))))
