"""LGI-Former: Local-Global Interaction Transformer (MAE-DFER, Sec. 3.4).

Tokens are split into M rectangular space-time regions of N tokens; each region gets
one learnable representative token. One block:

1. intra-region self-attention over the 1 + N tokens of every region;
2. inter-region self-attention over the M representative tokens of a sample;
3. local-global interaction: every local token cross-attends to all M representative tokens;
4. an FFN on every token.

Steps 2 and 3 can be switched off (Table 3 ablations); a switched-off step is an identity
module, so ``forward`` has no branches.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from einops import rearrange
from torch import nn

from maedfer.constants import IMG_SIZE, NUM_FRAMES, PATCH_SIZE, TUBELET_SIZE
from maedfer.models.encoder import VideoEncoder, drop_path_rates
from maedfer.models.init import trunc_normal_
from maedfer.models.layers import CrossAttention, DropPath, Mlp, SelfAttention
from maedfer.models.outputs import EncoderOutput


class RegionLayoutError(ValueError):
    """A region size that does not tile the token grid."""


class MaskLayoutError(ValueError):
    """A mask that leaves different numbers of visible tokens in different regions."""


class ResidualSelfAttention(nn.Module):
    """x + DropPath(SelfAttn(LN(x)))."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, drop_path: float, norm_layer: Callable) -> None:
        super().__init__()
        self.norm = norm_layer(dim)
        self.attn = SelfAttention(dim, num_heads, qkv_bias=qkv_bias)
        self.attn.qkv.init_chunks = (dim, 2 * dim)  # reference code: separate q and kv layers
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual self-attention over the tokens of each group."""
        # x: (B', L, C)
        return x + self.drop_path(self.attn(self.norm(x)))


class LocalGlobalInteraction(nn.Module):
    """l + DropPath(CrossAttn(q=LN_q(l), kv=LN_kv(s))): local tokens read all representative tokens."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, drop_path: float, norm_layer: Callable) -> None:
        super().__init__()
        self.norm_q = norm_layer(dim)
        self.norm_kv = norm_layer(dim)
        self.attn = CrossAttention(dim, num_heads, qkv_bias=qkv_bias)
        self.drop_path = DropPath(drop_path)

    def forward(self, local: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        """Local tokens after reading the representative tokens (same shape as ``local``)."""
        # local: (B, M, N, C), may be a strided view of the block's tokens; regions: (B, M, C)
        q = self.norm_q(local)  # (B, M, N, C), contiguous: the norm reads the view, no copy before it
        out = self.attn(q.flatten(1, 2), self.norm_kv(regions))  # (B, M*N, C)
        return local + self.drop_path(out.view(q.shape))  # (B, M, N, C)


class SkipInteraction(nn.Module):
    """Stand-in for a switched-off local-global interaction: returns the local tokens unchanged."""

    def forward(self, local: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        """The local tokens unchanged."""
        return local


class LGIBlock(nn.Module):
    """One LGI-Former block: intra-region, inter-region, local-global interaction, FFN."""
    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        use_inter: bool = True,
        use_lgi: bool = True,
    ) -> None:
        super().__init__()
        self.intra = ResidualSelfAttention(dim, num_heads, qkv_bias, drop_path, norm_layer)
        self.inter = (
            ResidualSelfAttention(dim, num_heads, qkv_bias, drop_path, norm_layer) if use_inter else nn.Identity()
        )
        self.lgi = (
            LocalGlobalInteraction(dim, num_heads, qkv_bias, drop_path, norm_layer) if use_lgi else SkipInteraction()
        )
        self.norm_mlp = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, M, 1+N, C) -> (B, M, 1+N, C)."""
        # x: (B, M, 1+N, C), index 0 of each region = its representative token
        b, m, s, c = x.shape
        x = self.intra(x.reshape(b * m, s, c)).reshape(b, m, s, c)
        regions = self.inter(x[:, :, 0])  # (B, M, C)
        local = self.lgi(x[:, :, 1:], regions)  # (B, M, N, C); the slice is read in place, never copied
        x = torch.cat([regions.unsqueeze(2), local], dim=2)  # (B, M, 1+N, C)
        return x + self.drop_path(self.mlp(self.norm_mlp(x)))


class LGIFormer(VideoEncoder):
    """The LGI-Former encoder. Input: ImageNet-normalised clips (B, 3, T, H, W)."""

    def __init__(
        self,
        img_size: int = IMG_SIZE,
        patch_size: int = PATCH_SIZE,
        num_frames: int = NUM_FRAMES,
        tubelet_size: int = TUBELET_SIZE,
        in_chans: int = 3,
        embed_dim: int = 512,
        depth: int = 16,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        region_size: tuple[int, int, int] = (2, 5, 10),
        use_inter: bool = True,
        use_lgi: bool = True,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
        final_norm: bool = False,
    ) -> None:
        super().__init__(img_size, patch_size, num_frames, tubelet_size, in_chans, embed_dim, depth)
        norm_layer = partial(nn.LayerNorm, eps=norm_eps)
        grid = self.patch_embed.grid
        region_size = tuple(int(r) for r in region_size)
        if len(region_size) != 3 or any(r <= 0 or g % r for g, r in zip(grid, region_size, strict=True)):
            raise RegionLayoutError(
                f"region size {region_size} (t, h, w) does not tile the {grid[0]}x{grid[1]}x{grid[2]} token grid; "
                f"each entry must divide {grid}"
            )
        self.region_size = region_size
        self.region_grid = tuple(g // r for g, r in zip(grid, region_size, strict=True))  # (nt, nh, nw)
        self.num_regions = self.region_grid[0] * self.region_grid[1] * self.region_grid[2]
        self.tokens_per_region = region_size[0] * region_size[1] * region_size[2]

        positions = torch.arange(self.patch_embed.num_patches)[None, :, None]
        self.register_buffer("region_index", self.partition(positions)[0, :, :, 0], persistent=False)  # (M, N)

        self.region_tokens = nn.Parameter(torch.zeros(self.num_regions, embed_dim))  # (M, C)
        dpr = drop_path_rates(drop_path_rate, depth)
        self.blocks = nn.ModuleList(
            LGIBlock(embed_dim, num_heads, mlp_ratio, qkv_bias, dpr[i], norm_layer, use_inter, use_lgi)
            for i in range(depth)
        )
        self.norm = norm_layer(embed_dim) if final_norm else nn.Identity()

    def init_weights(self, scheme: str) -> None:
        """The encoder's init plus the representative tokens (truncated normal, std 0.02)."""
        super().init_weights(scheme)
        trunc_normal_(self.region_tokens, std=0.02, bound=0.02 if scheme == "pretrain" else None)

    def partition(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, C) in raster order -> (B, M, N, C), regions in (nt, nh, nw) order, tokens (t, h, w) inside."""
        (nt, nh, nw), (t, h, w) = self.region_grid, self.region_size
        return rearrange(x, "b (nt t nh h nw w) c -> b (nt nh nw) (t h w) c", nt=nt, nh=nh, nw=nw, t=t, h=h, w=w)

    def select_visible(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keep the visible tokens of every region. x: (B, M, N, C); mask: (B, L) bool, True = masked.

        Returns (B, M, Nv, C) tokens and (B, M, Nv) raster positions, visible tokens kept in
        (t, h, w) order inside each region. Every region must hold the same number Nv.
        """
        b = x.shape[0]
        keep = ~self.partition(mask[:, :, None])[..., 0]  # (B, M, N)
        counts = keep.sum(-1)  # (B, M)
        nv = int(counts[0, 0])
        if nv == 0 or not bool((counts == nv).all()):
            raise MaskLayoutError(
                f"the mask leaves {counts.min().item()}..{counts.max().item()} visible tokens per region; LGI-Former "
                f"needs the same number in each of its {self.num_regions} regions of size {self.region_size} "
                "(use maedfer.masking.TubeWindowMaskGenerator built from this encoder)"
            )
        order = torch.argsort((~keep).to(torch.int8), dim=-1, stable=True)[..., :nv]  # (B, M, Nv)
        x = torch.gather(x, 2, order[..., None].expand(-1, -1, -1, x.shape[-1]))
        positions = torch.gather(self.region_index.expand(b, -1, -1), 2, order)
        return x, positions

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> EncoderOutput:
        """Encode region by region; with ``mask``, only the visible tokens of every region."""
        # x: (B, 3, T, H, W); mask: (B, L) bool, True = masked (pre-training) or None
        x = self.embed(x)  # (B, L, C)
        b = x.shape[0]
        x = self.partition(x)  # (B, M, N, C)
        if mask is None:
            positions = self.region_index.expand(b, -1, -1)  # (B, M, N)
        else:
            x, positions = self.select_visible(x, mask)  # (B, M, Nv, C)
        regions = self.region_tokens.to(x.dtype).expand(b, -1, -1).unsqueeze(2)  # (B, M, 1, C)
        x = torch.cat([regions, x], dim=2)  # (B, M, 1+N, C)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        return EncoderOutput(
            tokens=x[:, :, 1:].flatten(1, 2),  # (B, M*N, C), region order
            positions=positions.flatten(1),  # (B, M*N)
            region_tokens=x[:, :, 0],  # (B, M, C)
        )

    def no_weight_decay(self) -> set[str]:
        """The representative tokens train without weight decay.

        As in the authors' optimiser factory, they fall in "the rest" of :meth:`layer_id` and so
        train at the full (head) learning rate under layer-wise decay.
        """
        return {"region_tokens"}
