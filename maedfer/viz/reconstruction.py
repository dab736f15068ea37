"""Reconstruction previews of a pre-training model, as in the paper's Fig. 4.

Rows (one column per cube slot, i.e. every second frame): original frame, masked input, predicted
appearance, predicted motion (frame difference), and the recovered second frame (predicted appearance +
predicted motion). The motion row shows the difference's magnitude on black (``motion="magnitude"``,
masked cubes only) or, as in the paper, the signed difference on a gray background (``motion="gray"``:
0.5 + 0.5 * difference / the clip's largest true difference; visible cubes show the true difference).
Predictions live in the per-cube normalised space of the targets; they are mapped back to pixels with
each cube's own mean and std taken from the original clip (as VideoMAE's visualisation does, so flat
colour per cube is what an untrained model shows), and visible cubes show the original pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from einops import rearrange

from maedfer.io_utils import atomic_path
from maedfer.models.targets import unnormalise

ROWS = ("original", "masked input", "predicted appearance", "predicted motion", "recovered")
MotionStyle = Literal["magnitude", "gray"]
DPI = 100


@torch.no_grad()
def reconstruction_rows(
    model: torch.nn.Module, video: torch.Tensor, mask: torch.Tensor, motion: MotionStyle = "magnitude"
) -> np.ndarray:
    """(5, T', H, W, 3) uint8 images for one clip. video: (1, 3, T, H, W) normalised; mask: (1, L) bool."""
    if motion not in ("magnitude", "gray"):
        raise ValueError(f"motion must be 'magnitude' or 'gray', got {motion!r}")
    p, tub = model.patch_size, model.tubelet_size
    t, h, w = model.encoder.patch_embed.grid
    model.eval()
    pred = model.as_appearance_motion(model(video, mask).float())  # (1, Lm, 2*P*P*3): appearance, motion
    x = unnormalise(video.float())  # (1, 3, T, H, W) in [0, 1]
    cubes = rearrange(x, "b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2) c", p0=tub, p1=p, p2=p)
    mean, std = cubes.mean(-2, keepdim=True), cubes.var(-2, unbiased=True, keepdim=True).sqrt() + 1e-6
    frames = rearrange(cubes, "b l (p0 pp) c -> b l p0 pp c", p0=tub)  # (1, L, 2, P*P, 3)
    full = pred.new_zeros(1, cubes.shape[1], 2, p * p, 3)  # on the model's device
    full[mask] = rearrange(pred, "b l (two pp c) -> (b l) two pp c", two=2, c=3)
    app_px = full[:, :, 0] * std + mean  # (1, L, P*P, 3)
    motion_px = full[:, :, 1] * std  # pixel-space difference
    second_px = app_px + motion_px
    m = mask[..., None, None]
    app_px = torch.where(m, app_px, frames[:, :, 0])
    second_px = torch.where(m, second_px, frames[:, :, 1])
    masked_in = torch.where(m, torch.full_like(frames[:, :, 0], 0.5), frames[:, :, 0])
    if motion == "gray":
        true_diff = frames[:, :, 1] - frames[:, :, 0]  # (1, L, P*P, 3)
        scale = true_diff.abs().max().clamp_min(1e-2)
        motion_img = 0.5 + 0.5 * torch.where(m, motion_px, true_diff) / scale
    else:
        magnitude = motion_px.abs().mean(-1, keepdim=True).expand_as(motion_px)
        motion_img = torch.where(m, magnitude / magnitude.max().clamp_min(1e-6), torch.zeros_like(magnitude))

    def image(cube_px: torch.Tensor) -> torch.Tensor:  # (1, L, P*P, 3) -> (T', H, W, 3)
        return rearrange(cube_px[0], "(t h w) (p1 p2) c -> t (h p1) (w p2) c", t=t, h=h, w=w, p1=p, p2=p)

    rows = [image(frames[:, :, 0]), image(masked_in), image(app_px), image(motion_img), image(second_px)]
    return (torch.stack(rows).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def figure_size_px(num_columns: int) -> tuple[int, int]:
    """(width, height) in pixels of the PNG for ``num_columns`` cube slots (1100 x 625 for 16 frames)."""
    return round(DPI * (1.2 * num_columns + 1.4)), round(DPI * 1.25 * len(ROWS))


def save_reconstruction_figure(model: torch.nn.Module, video: torch.Tensor, mask: torch.Tensor, path: str | Path,
                               title: str | None = None, motion: MotionStyle = "magnitude") -> Path:
    """Write the 5-row preview grid as a PNG (atomically); its size is :func:`figure_size_px`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = reconstruction_rows(model, video, mask, motion)  # (5, T', H, W, 3)
    n_rows, n_cols = rows.shape[:2]
    width, height = figure_size_px(n_cols)
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r in range(n_rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.imshow(rows[r, c])
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(ROWS[r], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return path
