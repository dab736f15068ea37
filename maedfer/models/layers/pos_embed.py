"""The fixed 1-D sine-cosine position table of VideoMAE (not learnable)."""

from __future__ import annotations

import torch


def sincos_table(num_positions: int, dim: int) -> torch.Tensor:
    """(num_positions, dim): sin on even channels, cos on odd ones, angle pos / 10000^(2*(j//2)/dim).

    Computed in float64 and rounded to float32, as the reference numpy table is.
    """
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (L, 1)
    j = torch.arange(dim, dtype=torch.float64)
    denom = torch.pow(torch.tensor(10000.0, dtype=torch.float64), 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    angles = pos / denom  # (L, C)
    table = torch.empty_like(angles)
    table[:, 0::2] = torch.sin(angles[:, 0::2])
    table[:, 1::2] = torch.cos(angles[:, 1::2])
    return table.float()
