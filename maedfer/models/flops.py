"""Analytic FLOP counting in the paper's convention (fvcore: one multiply-add = 1 FLOP).

Counted like fvcore's default handlers: Linear and Conv3d multiply-adds (no bias), the two
attention matmuls (QK^T and AV), and LayerNorm at 5 FLOPs per element (affine). Element-wise
ops, softmax, GELU and pooling count 0. Runs on the meta device, so even ViT-B costs no
compute or memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from maedfer.models.layers.attention import CrossAttention, SelfAttention


@contextmanager
def _hooks(model: nn.Module, counter: list[int]) -> Iterator[None]:
    def linear(m: nn.Linear, inp: tuple, out: torch.Tensor) -> None:
        counter[0] += math.prod(inp[0].shape[:-1]) * m.in_features * m.out_features

    def conv(m: nn.Conv3d, inp: tuple, out: torch.Tensor) -> None:
        kernel = m.in_channels // m.groups * math.prod(m.kernel_size)
        counter[0] += out.numel() * kernel

    def norm(m: nn.LayerNorm, inp: tuple, out: torch.Tensor) -> None:
        counter[0] += inp[0].numel() * (5 if m.elementwise_affine else 4)

    def self_attn(m: SelfAttention, inp: tuple, out: torch.Tensor) -> None:
        b, length, c = inp[0].shape
        counter[0] += b * length * c * 3 * c  # fused qkv projection (F.linear, not a module call)
        counter[0] += 2 * b * length * length * c  # QK^T and AV

    def cross_attn(m: CrossAttention, inp: tuple, out: torch.Tensor) -> None:
        (b, lq, c), (_, lk, cc) = inp[0].shape, inp[1].shape
        counter[0] += b * lq * c * c + b * lk * cc * 2 * c  # q and kv projections
        counter[0] += 2 * b * lq * lk * c

    handles = []
    for m in model.modules():
        for kind, fn in (
            (nn.Linear, linear),
            (nn.Conv3d, conv),
            (nn.LayerNorm, norm),
            (SelfAttention, self_attn),
            (CrossAttention, cross_attn),
        ):
            if isinstance(m, kind):
                handles.append(m.register_forward_hook(fn))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def count_flops(model: nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs (multiply-adds) of one forward pass of ``model(*inputs)``."""
    counter = [0]
    with _hooks(model, counter), torch.no_grad():
        model(*inputs)
    return counter[0]


def classifier_flops(model: nn.Module, batch_size: int = 1) -> int:
    """FLOPs of a classifier on a (batch, 3, T, H, W) clip, counted on the meta device."""
    pe = model.encoder.patch_embed
    meta = model.to("meta")
    x = torch.empty(batch_size, 3, pe.num_frames, pe.img_size, pe.img_size, device="meta")
    return count_flops(meta, x)


def pretrain_flops(model: nn.Module, batch_size: int = 1, seed: int = 0) -> int:
    """FLOPs of one pre-training forward.

    FLOPs of a pre-training forward with a freshly drawn mask (visible-token count is data-dependent,
    so this runs on CPU with real tensors).
    """
    pe = model.encoder.patch_embed
    x = torch.zeros(batch_size, 3, pe.num_frames, pe.img_size, pe.img_size)
    mask = model.sample_mask(batch_size, generator=torch.Generator().manual_seed(seed))
    return count_flops(model, x, mask)


def count_params(model: nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())
