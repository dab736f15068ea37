"""Multi-head attention through ``F.scaled_dot_product_attention``.

Bias layout follows VideoMAE/MAE-DFER: queries and values have a learnable bias, keys
have none (a key bias adds the same value to every logit of a query, so softmax ignores
it; dropping it keeps parameter counts identical to the authors' models).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class _AttentionBase(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, attn_drop: float, proj_drop: float) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"attention dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.register_parameter("q_bias", None)
            self.register_parameter("v_bias", None)
        # The keys' zero bias, kept once (not a parameter, not saved): the fused bias is one cat per call.
        self.register_buffer("k_bias", torch.zeros(dim) if qkv_bias else None, persistent=False)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # q: (B, h, Lq, d); k, v: (B, h, Lk, d)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        out = rearrange(out, "b h l d -> b l (h d)")  # (B, Lq, C)
        return self.proj_drop(self.proj(out))


class SelfAttention(_AttentionBase):
    """Self-attention with one fused qkv projection."""

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0
    ) -> None:
        super().__init__(dim, num_heads, qkv_bias, attn_drop, proj_drop)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Self-attention over the tokens (B, L, C) -> (B, L, C)."""
        # x: (B, L, C)
        bias = None
        if self.q_bias is not None:
            bias = torch.cat([self.q_bias, self.k_bias.to(self.q_bias.dtype), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias)  # (B, L, 3C)
        q, k, v = rearrange(qkv, "b l (three h d) -> three b h l d", three=3, h=self.num_heads)
        return self._attend(q, k, v)


class CrossAttention(_AttentionBase):
    """Queries from ``x``, keys and values from ``context``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        context_dim: int | None = None,
    ) -> None:
        super().__init__(dim, num_heads, qkv_bias, attn_drop, proj_drop)
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(context_dim or dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Queries ``x`` (B, L, C) attend to ``context`` (B, S, C) -> (B, L, C)."""
        # x: (B, Lq, C); context: (B, Lk, Cc)
        kv_bias = None
        if self.q_bias is not None:
            kv_bias = torch.cat([self.k_bias.to(self.v_bias.dtype), self.v_bias])
        q = F.linear(x, self.q.weight, self.q_bias)  # (B, Lq, C)
        kv = F.linear(context, self.kv.weight, kv_bias)  # (B, Lk, 2C)
        q = rearrange(q, "b l (h d) -> b h l d", h=self.num_heads)
        k, v = rearrange(kv, "b l (two h d) -> two b h l d", two=2, h=self.num_heads)
        return self._attend(q, k, v)
