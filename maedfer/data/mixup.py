"""Batch-level Mixup / CutMix with label smoothing (timm ``Mixup`` semantics), and the soft-target loss.

Per batch (``mode='batch'``, what the authors ran): with probability ``prob`` mix; choose
CutMix with probability ``switch_prob`` (when both alphas are > 0), lambda ~ Beta(alpha, alpha);
each sample is mixed with the sample at the mirrored batch position (``x.flip(0)``).
CutMix pastes one box, the same in every frame of every clip, and corrects lambda to the box's
true area. Targets: one-hot smoothed with ``label_smoothing`` (off = s / K, on = 1 - s + s / K),
mixed with the same lambda; each target row sums to 1.

Randomness comes from a numpy Generator: pass one per call (e.g. ``derive_rng(seed, epoch, step)``)
for runs that resume bit-exactly, or let the instance use its own, seeded at construction.

The default box is what the authors' runs did: their ``mixup.py`` pastes ``x[..., yl:yh, xl:xh]``
of a 5-D video batch (B, C, T, H, W), i.e. the (H, W) box in every frame, with lambda corrected
for that box's area.

``legacy_video_cutmix=True`` is a different variant, not the authors': timm's image Mixup slice
``x[:, :, yl:yh, xl:xh]`` applied to a 5-D batch, so the box's rows land on the TIME axis and its
columns on the HEIGHT axis (whole width), while lambda is computed for an (H, W) box. Off by
default; kept only to compare with code that slices video batches that way.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def one_hot_smoothed(target: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """(B,) int -> (B, K) float: ``1 - s + s/K`` on the class, ``s/K`` elsewhere."""
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    out = torch.full((target.shape[0], num_classes), off, device=target.device, dtype=torch.float32)
    return out.scatter_(1, target.long().view(-1, 1), on)


def mixup_target(target: torch.Tensor, num_classes: int, lam: float = 1.0, smoothing: float = 0.0) -> torch.Tensor:
    """Smoothed one-hot of ``target`` mixed with that of ``target.flip(0)``: (B, K)."""
    y1 = one_hot_smoothed(target, num_classes, smoothing)
    y2 = one_hot_smoothed(target.flip(0), num_classes, smoothing)
    return y1 * lam + y2 * (1.0 - lam)


def rand_bbox(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Timm's CutMix box (yl, yh, xl, xh): sides sqrt(1 - lam) x the image's, centre uniform, clipped."""
    ratio = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    yl, yh = int(np.clip(cy - cut_h // 2, 0, height)), int(np.clip(cy + cut_h // 2, 0, height))
    xl, xh = int(np.clip(cx - cut_w // 2, 0, width)), int(np.clip(cx + cut_w // 2, 0, width))
    return yl, yh, xl, xh


class Mixup:
    """Mixup / CutMix of a batch with label-smoothed soft targets.

    ``x, soft_targets = mixup(x, target, rng=None)`` for x (B, C, T, H, W) (or (B, C, H, W)),
    B even; x is mixed in place and returned.
    """

    def __init__(
        self,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
        num_classes: int = 7,
        correct_lam: bool = True,
        legacy_video_cutmix: bool = False,
        seed: int = 0,
    ) -> None:
        if mixup_alpha <= 0 and cutmix_alpha <= 0:
            raise ValueError("Mixup needs mixup_alpha > 0 or cutmix_alpha > 0")
        self.mixup_alpha = float(mixup_alpha)
        self.cutmix_alpha = float(cutmix_alpha)
        self.prob = float(prob)
        self.switch_prob = float(switch_prob)
        self.label_smoothing = float(label_smoothing)
        self.num_classes = int(num_classes)
        self.correct_lam = bool(correct_lam)
        self.legacy_video_cutmix = bool(legacy_video_cutmix)
        self.enabled = True  # a training loop may switch mixing off (e.g. for the last epochs)
        self.rng = np.random.default_rng(seed)

    def params(self, rng: np.random.Generator) -> tuple[float, bool]:
        """(lambda, use_cutmix) for one batch; lambda 1.0 means no mixing."""
        if not self.enabled or rng.random() >= self.prob:
            return 1.0, False
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            use_cutmix = bool(rng.random() < self.switch_prob)
        else:
            use_cutmix = self.cutmix_alpha > 0
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        return float(rng.beta(alpha, alpha)), use_cutmix

    def mix_(self, x: torch.Tensor, rng: np.random.Generator) -> float:
        """Mix x in place with x.flip(0); returns the effective lambda."""
        lam, use_cutmix = self.params(rng)
        if lam == 1.0:
            return 1.0
        if use_cutmix:
            height, width = x.shape[-2:]
            yl, yh, xl, xh = rand_bbox(height, width, lam, rng)
            if self.correct_lam:
                lam = 1.0 - (yh - yl) * (xh - xl) / float(height * width)
            if self.legacy_video_cutmix:
                x[:, :, yl:yh, xl:xh] = x.flip(0)[:, :, yl:yh, xl:xh]
            else:
                x[..., yl:yh, xl:xh] = x.flip(0)[..., yl:yh, xl:xh]
        else:
            flipped = x.flip(0).mul_(1.0 - lam)
            x.mul_(lam).add_(flipped)
        return lam

    def __call__(
        self, x: torch.Tensor, target: torch.Tensor, rng: np.random.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix the batch ``x`` in place; returns it with the soft targets (B, num_classes)."""
        if x.shape[0] % 2 != 0:
            raise ValueError(f"Mixup needs an even batch size, got {x.shape[0]} (use drop_last=True)")
        lam = self.mix_(x, self.rng if rng is None else rng)
        return x, mixup_target(target, self.num_classes, lam, self.label_smoothing)


class SoftTargetCrossEntropy(nn.Module):
    """Mean over the batch of ``-sum_k target_k * log_softmax(logits)_k``: (B, K), (B, K) -> scalar."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Soft-target cross entropy of ``logits`` (B, K) against ``target`` (B, K)."""
        loss = torch.sum(-target * F.log_softmax(logits, dim=-1), dim=-1)
        return loss.mean()
