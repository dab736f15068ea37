"""Weight initialisation schemes of the authors' code.

* ``"finetune"``: Linear weights trunc_normal(std 0.02), biases 0; LayerNorm 1/0.
* ``"pretrain"``: Linear weights xavier_uniform, biases 0; LayerNorm 1/0.

Conv3d patch embeddings keep PyTorch's default init in both. Attention modules whose
reference code used separate q and kv projections (LGI-Former) mark it with
``qkv_init_chunks`` so the fused weight is initialised chunk by chunk, as separate layers would be.
"""

from __future__ import annotations

import torch
from torch import nn


def trunc_normal_(tensor: torch.Tensor, std: float = 0.02, bound: float | None = None) -> torch.Tensor:
    """Truncated normal with absolute bounds ``[-bound, bound]`` (default 2, as timm's default)."""
    b = 2.0 if bound is None else bound
    return nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-b, b=b)


def init_weights(module: nn.Module, scheme: str) -> None:
    """Initialise every Linear and LayerNorm of ``module`` with ``scheme`` ("finetune" or "pretrain")."""
    if scheme not in ("finetune", "pretrain"):
        raise ValueError(f"unknown init scheme {scheme!r}; expected 'finetune' or 'pretrain'")
    for m in module.modules():
        if isinstance(m, nn.Linear):
            chunks = getattr(m, "init_chunks", None) or [m.weight.shape[0]]
            for w in torch.split(m.weight.data, list(chunks), dim=0):
                if scheme == "finetune":
                    trunc_normal_(w, std=0.02)
                else:
                    nn.init.xavier_uniform_(w)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
