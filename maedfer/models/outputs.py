"""What an encoder hands to a classification head or to the MAE decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class EncoderOutput:
    """The encoder's tokens, their raster positions and (LGI-Former) its representative tokens."""
    tokens: torch.Tensor  # (B, L', C): the (visible) patch tokens, in the encoder's order
    positions: torch.Tensor  # (B, L') long: raster (t, h, w) index of each token
    region_tokens: torch.Tensor | None = None  # (B, M, C): LGI-Former representative tokens
