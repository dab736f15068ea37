"""Reconstruction targets of MAE-DFER: normalised appearance and frame-difference motion.

Per cube (tubelet x patch x patch pixels) and colour channel, pixels in [0, 1] are normalised
by their mean and unbiased std (+1e-6). Appearance target = the cube's first frame;
motion target = its second frame minus its first (both normalised). Per cube the target is
flattened as (frame, py, px, channel): the first half is appearance, the second motion.
"""

from __future__ import annotations

import torch
from einops import rearrange

from maedfer.constants import IMAGENET_MEAN, IMAGENET_STD, TUBELET_SIZE


def unnormalise(video: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised (B, 3, T, H, W) -> pixels in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, device=video.device, dtype=video.dtype)[None, :, None, None, None]
    std = torch.tensor(IMAGENET_STD, device=video.device, dtype=video.dtype)[None, :, None, None, None]
    return video * std + mean


def cube_targets(video: torch.Tensor, patch_size: int, tubelet_size: int = TUBELET_SIZE) -> torch.Tensor:
    """(B, 3, T, H, W) normalised clip -> (B, L, tubelet*patch*patch*3) targets for every cube."""
    if tubelet_size != 2:
        raise ValueError("appearance + motion targets need tubelet_size 2 (one frame pair per cube)")
    x = unnormalise(video.float())
    cubes = rearrange(
        x, "b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2) c", p0=tubelet_size, p1=patch_size, p2=patch_size
    )  # (B, L, 2*P*P, 3)
    mean = cubes.mean(dim=-2, keepdim=True)
    std = cubes.var(dim=-2, unbiased=True, keepdim=True).sqrt()
    cubes = (cubes - mean) / (std + 1e-6)
    frames = rearrange(cubes, "b l (p0 p) c -> b l p0 (p c)", p0=tubelet_size)  # (B, L, 2, P*P*3)
    appearance, second = frames[:, :, 0], frames[:, :, 1]
    return torch.cat([appearance, second - appearance], dim=-1)  # (B, L, 2*P*P*3)


def masked_targets(
    video: torch.Tensor, mask: torch.Tensor, patch_size: int, tubelet_size: int = TUBELET_SIZE
) -> torch.Tensor:
    """Targets of the masked cubes, in raster order: (B, Lm, D)."""
    targets = cube_targets(video, patch_size, tubelet_size)  # (B, L, D)
    b, _, d = targets.shape
    return targets[mask].reshape(b, -1, d)


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, appearance_weight: float) -> dict[str, torch.Tensor]:
    """Eq. 2 of the paper: lambda * MSE(appearance) + (1 - lambda) * MSE(motion).

    With lambda = 0.5 this equals the plain MSE over all values of the cube.
    """
    half = target.shape[-1] // 2
    pred = pred.float()
    loss_app = (pred[..., :half] - target[..., :half]).pow(2).mean()
    loss_motion = (pred[..., half:] - target[..., half:]).pow(2).mean()
    loss = appearance_weight * loss_app + (1.0 - appearance_weight) * loss_motion
    return {"loss": loss, "loss_appearance": loss_app, "loss_motion": loss_motion}
