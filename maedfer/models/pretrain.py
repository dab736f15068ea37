"""MAE-DFER pre-training model: encoder on visible tokens, light decoder, joint targets.

``forward(video, mask)`` takes an ImageNet-normalised clip (B, 3, T, H, W) and a boolean mask
(B, L), True = masked, and returns predictions (B, Lm, 2*P*P*3) for the masked cubes in raster
order. ``loss(video, pred, mask)`` builds the targets (maedfer.models.targets) and the loss.

Target (``target``):
* ``"mae_dfer"`` (default): appearance (first frame) + motion (frame difference) of each cube,
  weighted by Eq. 2's lambda, ``appearance_weight`` (default 0.5).
* ``"videomae"``: the original VideoMAE target, the whole normalised cube (both frames), plain
  MSE; ``appearance_weight`` does not apply and is rejected. The decoder head has the same width
  (tubelet x patch x patch x 3) for both targets.

Token order (``token_order``):
* ``"authors"`` (default, reproduces the released checkpoint): the encoder returns visible
  tokens region by region, yet the decoder adds the visible positions in raster order, as the
  authors' code does. With region 2x5x10 this swaps the decoder positions of (band 0, second
  slot) and (band 1, first slot) tokens in every slot pair.
* ``"raster"``: each visible token gets its own position (the corrected behaviour).
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import torch
from torch import nn

from maedfer.masking import TubeWindowMaskGenerator
from maedfer.models.init import init_weights, trunc_normal_
from maedfer.models.layer_groups import EncoderLayerGroups
from maedfer.models.layers import Block, sincos_table
from maedfer.models.targets import TARGETS, Target, masked_targets, plain_mse, weighted_mse

TokenOrder = Literal["authors", "raster"]


class MAEDecoder(nn.Module):
    """The light MAE decoder: Transformer blocks on all tokens, then a linear head on the masked ones."""
    def __init__(
        self,
        dim: int = 384,
        depth: int = 4,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        out_dim: int = 1536,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        norm_layer = partial(nn.LayerNorm, eps=norm_eps)
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio, True, norm_layer=norm_layer) for _ in range(depth))
        self.norm = norm_layer(dim)
        self.head = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor, num_masked: int) -> torch.Tensor:
        """Predictions (B, Lm, out_dim) for the last ``num_masked`` tokens."""
        # x: (B, Lv + Lm, Cd), mask tokens last
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x[:, -num_masked:]))  # (B, Lm, out_dim)


class MAEPretrainModel(EncoderLayerGroups, nn.Module):
    """The MAE-DFER pre-training model: encoder on the visible tokens, decoder, joint targets."""
    extra_no_weight_decay = frozenset({"mask_token"})

    def __init__(
        self,
        encoder: nn.Module,
        decoder_dim: int = 384,
        decoder_depth: int = 4,
        decoder_heads: int = 6,
        mlp_ratio: float = 4.0,
        mask_ratio: float = 0.9,
        appearance_weight: float | None = None,
        token_order: TokenOrder = "authors",
        norm_eps: float = 1e-6,
        target: Target = "mae_dfer",
    ) -> None:
        super().__init__()
        if token_order not in ("authors", "raster"):
            raise ValueError(f"token_order must be 'authors' or 'raster', got {token_order!r}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
        if target == "videomae" and appearance_weight is not None:
            raise ValueError(
                "appearance_weight (Eq. 2's lambda) applies to target 'mae_dfer' only; target 'videomae' scores "
                "the whole tubelet: drop appearance_weight from arch_kwargs (null in a params run)"
            )
        if target == "mae_dfer":
            appearance_weight = 0.5 if appearance_weight is None else appearance_weight
            if not 0.0 <= appearance_weight <= 1.0:
                raise ValueError(f"appearance_weight (lambda) must be in [0, 1], got {appearance_weight}")
        self.encoder = encoder
        pe = encoder.patch_embed
        self.patch_size, self.tubelet_size = pe.patch_size, pe.tubelet_size
        self.out_dim = pe.tubelet_size * pe.patch_size * pe.patch_size * 3
        self.encoder_to_decoder = nn.Linear(encoder.embed_dim, decoder_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder = MAEDecoder(decoder_dim, decoder_depth, decoder_heads, mlp_ratio, self.out_dim, norm_eps)
        self.register_buffer("decoder_pos", sincos_table(pe.num_patches, decoder_dim), persistent=False)
        self.mask_generator = TubeWindowMaskGenerator.for_encoder(encoder, mask_ratio)
        self.appearance_weight = appearance_weight  # None for the videomae target
        self.token_order = token_order
        self.target = target

    def init_weights(self) -> None:
        """The authors' pre-training init (xavier_uniform Linear layers, truncated-normal tokens)."""
        self.encoder.init_weights("pretrain")
        init_weights(self.decoder, "pretrain")
        nn.init.xavier_uniform_(self.encoder_to_decoder.weight)
        trunc_normal_(self.mask_token, std=0.02, bound=0.02)

    def sample_mask(
        self, batch_size: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Draw a batch of tube-window masks (B, L), True = masked."""
        return self.mask_generator(batch_size, generator=generator, device=device)

    def forward(self, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Predictions (B, Lm, 2*P*P*3) of the masked cubes, in raster order."""
        # video: (B, 3, T, H, W); mask: (B, L) bool, True = masked
        enc = self.encoder(video, mask)
        x_vis = self.encoder_to_decoder(enc.tokens)  # (B, Lv, Cd)
        b, _, cd = x_vis.shape
        pos = self.decoder_pos.to(x_vis.dtype)  # (L, Cd)
        vis_pos = enc.positions if self.token_order == "raster" else enc.positions.sort(dim=1).values  # (B, Lv)
        num_masked = int(mask[0].sum())
        mask_pos = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :num_masked]  # (B, Lm) raster
        x = torch.cat([x_vis + pos[vis_pos], self.mask_token.to(x_vis.dtype) + pos[mask_pos]], dim=1)
        return self.decoder(x, num_masked)  # (B, Lm, out_dim)

    def targets(self, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Targets of the masked cubes (B, Lm, D): appearance + motion, or the whole cube (videomae)."""
        with torch.no_grad():
            return masked_targets(video, mask, self.patch_size, self.tubelet_size, self.target)

    def loss(self, video: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eq. 2 loss and its appearance and motion parts; the plain MSE for the videomae target."""
        if self.target == "videomae":
            return plain_mse(pred, self.targets(video, mask))
        return weighted_mse(pred, self.targets(video, mask), self.appearance_weight)

    def as_appearance_motion(self, pred: torch.Tensor) -> torch.Tensor:
        """Predictions in the mae_dfer layout (first frame, second minus first), whatever the target.

        A videomae prediction holds both normalised frames, (frame, py, px, c); for previews that
        draw appearance and motion, its second half becomes the difference of the two frames.
        """
        if self.target == "mae_dfer":
            return pred
        first, second = pred.chunk(2, dim=-1)  # tubelet 2: one frame per half
        return torch.cat([first, second - first], dim=-1)

    def forward_loss(
        self, video: torch.Tensor, mask: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """One training step's forward: draws a mask if none is given; returns loss terms, pred, mask."""
        if mask is None:
            mask = self.sample_mask(video.shape[0], generator=generator, device=video.device)
        pred = self(video, mask)
        out = self.loss(video, pred, mask)
        out.update(pred=pred, mask=mask)
        return out
