"""Reconstruction targets of MAE-DFER (normalised appearance and motion) and of the original VideoMAE.

Per cube (tubelet x patch x patch pixels) and colour channel, pixels in [0, 1] are normalised
by their mean and unbiased std (+1e-6), as VideoMAE's ``normlize_target``. Per cube the values
are flattened as (frame, py, px, channel).

* ``"mae_dfer"`` (the paper's joint target, Eq. 2): appearance = the cube's normalised first
  frame, motion = its normalised second frame minus its first; the first half of the target is
  appearance, the second motion (tubelet 2 only).
* ``"videomae"`` (the original VideoMAE): the whole normalised cube, every frame of the tubelet,
  scored with a plain MSE over all its values.

Both are tubelet x patch x patch x 3 values per cube (1,536 at the paper's 2 x 16 x 16).
"""

from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange

from maedfer.constants import IMAGENET_MEAN, IMAGENET_STD, TUBELET_SIZE

Target = Literal["mae_dfer", "videomae"]
TARGETS: tuple[str, ...] = ("mae_dfer", "videomae")


def unnormalise(video: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised (B, 3, T, H, W) -> pixels in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, device=video.device, dtype=video.dtype)[None, :, None, None, None]
    std = torch.tensor(IMAGENET_STD, device=video.device, dtype=video.dtype)[None, :, None, None, None]
    return video * std + mean


def normalised_cubes(video: torch.Tensor, patch_size: int, tubelet_size: int = TUBELET_SIZE) -> torch.Tensor:
    """(B, 3, T, H, W) normalised clip -> (B, L, tubelet*P*P, 3) per-cube, per-channel normalised pixels."""
    x = unnormalise(video.float())
    cubes = rearrange(
        x, "b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2) c", p0=tubelet_size, p1=patch_size, p2=patch_size
    )  # (B, L, T'*P*P, 3)
    mean = cubes.mean(dim=-2, keepdim=True)
    std = cubes.var(dim=-2, unbiased=True, keepdim=True).sqrt()
    return (cubes - mean) / (std + 1e-6)


def cube_targets(video: torch.Tensor, patch_size: int, tubelet_size: int = TUBELET_SIZE) -> torch.Tensor:
    """MAE-DFER's joint target: (B, 3, T, H, W) normalised clip -> (B, L, 2*P*P*3) for every cube."""
    if tubelet_size != 2:
        raise ValueError("appearance + motion targets need tubelet_size 2 (one frame pair per cube)")
    cubes = normalised_cubes(video, patch_size, tubelet_size)  # (B, L, 2*P*P, 3)
    frames = rearrange(cubes, "b l (p0 p) c -> b l p0 (p c)", p0=tubelet_size)  # (B, L, 2, P*P*3)
    appearance, second = frames[:, :, 0], frames[:, :, 1]
    return torch.cat([appearance, second - appearance], dim=-1)  # (B, L, 2*P*P*3)


def videomae_cube_targets(video: torch.Tensor, patch_size: int, tubelet_size: int = TUBELET_SIZE) -> torch.Tensor:
    """The original VideoMAE target: the whole normalised cube, (B, L, tubelet*P*P*3) as (frame, py, px, c)."""
    return rearrange(normalised_cubes(video, patch_size, tubelet_size), "b l p c -> b l (p c)")


def masked_targets(
    video: torch.Tensor,
    mask: torch.Tensor,
    patch_size: int,
    tubelet_size: int = TUBELET_SIZE,
    target: Target = "mae_dfer",
) -> torch.Tensor:
    """Targets of the masked cubes, in raster order: (B, Lm, D)."""
    if target == "mae_dfer":
        targets = cube_targets(video, patch_size, tubelet_size)  # (B, L, D)
    elif target == "videomae":
        targets = videomae_cube_targets(video, patch_size, tubelet_size)
    else:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
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


def plain_mse(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """The original VideoMAE loss: the MSE over every value of the masked cubes."""
    return {"loss": (pred.float() - target).pow(2).mean()}
