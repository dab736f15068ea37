"""An independent re-statement of the authors' MAE-DFER computations, for equivalence tests.

Module and parameter names follow the released checkpoints' key layout exactly (see
tests/data/official_keys), and the forward passes follow the authors' order of operations:
explicit softmax(q k^T * scale) attention, in-place writes of the representative tokens,
visible tokens grouped by a rearrange of the raster order, and the decoder adding visible
positions in raster order to region-ordered tokens. Inference only (no dropout / drop path).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from maedfer.constants import IMAGENET_MEAN, IMAGENET_STD
from maedfer.models.layers.pos_embed import sincos_table

EPS = 1e-6


def _ln(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=EPS)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class GeneralAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.q_bias, self.v_bias = nn.Parameter(torch.zeros(dim)), nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, context=None):
        b, t1, c = x.shape
        kv_bias = torch.cat((torch.zeros_like(self.v_bias), self.v_bias))
        q = F.linear(x, self.q.weight, self.q_bias).reshape(b, t1, self.heads, -1).transpose(1, 2)
        kv = F.linear(x if context is None else context, self.kv.weight, kv_bias)
        t2 = kv.shape[1]
        k, v = kv.reshape(b, t2, 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, t1, -1))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias, self.v_bias = nn.Parameter(torch.zeros(dim)), nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        q, k, v = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, -1))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.attn, self.norm2, self.mlp = _ln(dim), Attention(dim, heads), _ln(dim), Mlp(dim, 4 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class LGBlock(nn.Module):
    def __init__(self, dim: int, heads: int, no_second: bool = False, no_third: bool = False) -> None:
        super().__init__()
        self.no_second, self.no_third = no_second, no_third
        self.first_attn_norm0, self.first_attn = _ln(dim), GeneralAttention(dim, heads)
        if not no_second:
            self.second_attn_norm0, self.second_attn = _ln(dim), GeneralAttention(dim, heads)
        if not no_third:
            self.third_attn_norm0, self.third_attn_norm1 = _ln(dim), _ln(dim)
            self.third_attn = GeneralAttention(dim, heads)
        self.norm2, self.mlp = _ln(dim), Mlp(dim, 4 * dim)

    def forward(self, x, b):
        n = x.shape[0] // b
        x = x + self.first_attn(self.first_attn_norm0(x))
        s = rearrange(x[:, 0].clone(), "(b n) c -> b n c", b=b)
        if not self.no_second:
            s = s + self.second_attn(self.second_attn_norm0(s))
            x[:, 0] = rearrange(s, "b n c -> (b n) c")
        if not self.no_third:
            local = rearrange(x[:, 1:].clone(), "(b n) s c -> b (n s) c", b=b)
            local = local + self.third_attn(self.third_attn_norm0(local), context=self.third_attn_norm1(s))
            x[:, 1:] = rearrange(local, "b (n s) c -> (b n) s c", n=n)
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, tubelet: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(3, dim, (tubelet, patch, patch), (tubelet, patch, patch))

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class LGIEncoder(nn.Module):
    """Shared by the fine-tuning model (top level) and the pre-training model (``encoder.``)."""

    def __init__(self, dim, depth, heads, grid, region, no_second=False, no_third=False, tubelet=2, patch=16):
        super().__init__()
        self.grid, self.region = grid, region
        self.nreg = [g // r for g, r in zip(grid, region, strict=True)]
        self.lg_region_tokens = nn.Parameter(torch.zeros(self.nreg[0] * self.nreg[1] * self.nreg[2], dim))
        self.patch_embed = PatchEmbed(dim, tubelet, patch)
        self.blocks = nn.ModuleList(LGBlock(dim, heads, no_second, no_third) for _ in range(depth))
        self.register_buffer("pos_embed", sincos_table(grid[0] * grid[1] * grid[2], dim)[None], persistent=False)

    def run_blocks(self, x, b):
        tokens = repeat(self.lg_region_tokens, "n c -> b n 1 c", b=b)
        x = rearrange(torch.cat([tokens, x], dim=2), "b n s c -> (b n) s c")
        for blk in self.blocks:
            x = blk(x, b)
        return x


class LGIFinetune(LGIEncoder):
    def __init__(self, num_classes, dim, depth, heads, grid, region, token_type="region", **kw):
        super().__init__(dim, depth, heads, grid, region, **kw)
        self.token_type = token_type
        self.fc_norm, self.head = _ln(dim), nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x) + self.pos_embed
        b = x.shape[0]
        (nt, nh, nw), (t, h, w) = self.nreg, self.region
        x = rearrange(x, "b (nt t nh h nw w) c -> b (nt nh nw) (t h w) c", nt=nt, nh=nh, nw=nw, t=t, h=h, w=w)
        x = rearrange(self.run_blocks(x, b), "(b n) s c -> b n s c", b=b)
        x = x[:, :, 0] if self.token_type == "region" else rearrange(x[:, :, 1:], "b n s c -> b (n s) c")
        return self.head(self.fc_norm(x.mean(1)))


class ViTFinetune(nn.Module):
    def __init__(self, num_classes, dim, depth, heads, grid, tubelet=2, patch=16):
        super().__init__()
        self.patch_embed = PatchEmbed(dim, tubelet, patch)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.fc_norm, self.head = _ln(dim), nn.Linear(dim, num_classes)
        self.register_buffer("pos_embed", sincos_table(grid[0] * grid[1] * grid[2], dim)[None], persistent=False)

    def forward(self, x):
        x = self.patch_embed(x) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.fc_norm(x.mean(1)))


class LGIPretrainEncoder(LGIEncoder):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.norm = _ln(self.lg_region_tokens.shape[1])

    def forward(self, x, mask):
        x = self.patch_embed(x) + self.pos_embed
        b, _, c = x.shape
        x_vis = x[~mask].reshape(b, -1, c)
        unmask_ratio = x_vis.shape[1] / x.shape[1]
        nt, t = self.nreg[0], self.region[0]
        nhw = self.nreg[1] * self.nreg[2]
        hw = int(round(self.region[1] * self.region[2] * unmask_ratio))
        x_vis = rearrange(x_vis, "b (nt t nhw hw) c -> b (nt nhw) (t hw) c", nt=nt, t=t, nhw=nhw, hw=hw)
        x_vis = self.run_blocks(x_vis, b)
        return self.norm(rearrange(x_vis[:, 1:], "(b n) s c -> b (n s) c", b=b))


class Decoder(nn.Module):
    def __init__(self, dim, depth, heads, out_dim):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm, self.head = _ln(dim), nn.Linear(dim, out_dim)

    def forward(self, x, n_mask):
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x[:, -n_mask:]))


class LGIPretrain(nn.Module):
    def __init__(self, dim, depth, heads, grid, region, dec_dim, dec_depth, dec_heads, patch=16, tubelet=2):
        super().__init__()
        self.encoder = LGIPretrainEncoder(dim, depth, heads, grid, region, patch=patch, tubelet=tubelet)
        self.decoder = Decoder(dec_dim, dec_depth, dec_heads, tubelet * patch * patch * 3)
        self.encoder_to_decoder = nn.Linear(dim, dec_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dec_dim))
        self.register_buffer("pos_embed", sincos_table(grid[0] * grid[1] * grid[2], dec_dim)[None], persistent=False)

    def forward(self, x, mask):
        x_vis = self.encoder_to_decoder(self.encoder(x, mask))
        b, _, c = x_vis.shape
        pos = self.pos_embed.expand(b, -1, -1)
        pos_vis, pos_mask = pos[~mask].reshape(b, -1, c), pos[mask].reshape(b, -1, c)
        full = torch.cat([x_vis + pos_vis, self.mask_token + pos_mask], dim=1)
        return self.decoder(full, pos_mask.shape[1])


def reference_loss(videos, mask, outputs, patch=16, diff_weight=None):
    """The authors' target construction and loss (frame-difference target, group size 2)."""
    mean = torch.as_tensor(IMAGENET_MEAN)[None, :, None, None, None]
    std = torch.as_tensor(IMAGENET_STD)[None, :, None, None, None]
    unnorm = videos * std + mean
    sq = rearrange(unnorm, "b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2) c", p0=2, p1=patch, p2=patch)
    normed = (sq - sq.mean(dim=-2, keepdim=True)) / (sq.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6)
    patches = rearrange(normed, "b n p c -> b n (p c)")
    _, _, t_in, h_in, w_in = unnorm.shape
    t, h, w = t_in // 2, h_in // patch, w_in // patch
    vid = rearrange(
        patches, "b (t h w) (p0 p1 p2 c) -> b c (t p0) (h p1) (w p2)", t=t, h=h, w=w, p0=2, p1=patch, p2=patch
    )
    kept = vid[:, :, ::2]
    diff = vid - kept.repeat_interleave(2, dim=2)
    diff[:, :, ::2] = vid[:, :, ::2]
    patches = rearrange(
        diff, "b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2 c)", t=t, h=h, w=w, p0=2, p1=patch, p2=patch
    )
    b, _, c = patches.shape
    labels = patches[mask].reshape(b, -1, c)
    if diff_weight is None:
        return F.mse_loss(outputs, labels)
    lab, out = rearrange(labels, "b n (p0 c) -> b n p0 c", p0=2), rearrange(outputs, "b n (p0 c) -> b n p0 c", p0=2)
    return (
        F.mse_loss(out[:, :, 0], lab[:, :, 0]) * (1 - diff_weight)
        + F.mse_loss(out[:, :, 1], lab[:, :, 1]) * diff_weight
    )


def reference_tube_window_mask(grid, window, ratio, rng):
    """The authors' generator: per window, a shuffled list of visible/masked, tiled over time."""
    t, h, w = grid
    per_window = window[0] * window[1]
    n_mask = int(ratio * per_window)
    frame = []
    for _ in range((h // window[0]) * (w // window[1])):
        m = [0] * (per_window - n_mask) + [1] * n_mask
        rng.shuffle(m)
        frame.extend(m)
    import numpy as np

    return np.tile(frame, (t, 1)).flatten().astype(bool)
