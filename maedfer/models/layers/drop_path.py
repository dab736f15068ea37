"""Stochastic depth: drop a residual branch per sample (first dimension)."""

from __future__ import annotations

import torch
from torch import nn


class DropPath(nn.Module):
    """Stochastic depth: drop a sample's residual branch with probability ``drop_prob`` (training only)."""
    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with whole samples zeroed and the rest rescaled by 1 / keep probability."""
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = x.new_empty(shape).bernoulli_(keep).div_(keep)
        return x * mask

    def extra_repr(self) -> str:
        """The drop probability, for the module's repr."""
        return f"drop_prob={self.drop_prob}"
