"""Sliding windows over a face track, sampled like the test loader, and their time-weighted average.

A window covers ``clip_len * frame_stride`` consecutive frames (64 at the paper's 16 x 4) and
feeds the model every ``frame_stride``-th of them, i.e. one of the test loader's clips
(:func:`maedfer.data.sampling.eval_clip_indices` with one clip). Windows start every ``hop``
frames; one more window is aligned to the last frame when the hop does not land there, so the
windows cover every frame of the span. A span shorter than one window gets a single window whose
sampled positions are padded by repeating the last one, as the test loader pads short clips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maedfer.data.sampling import eval_clip_indices


@dataclass(frozen=True)
class Window:
    """Frames ``start``..``end`` (inclusive, absolute in the video); ``indices`` (clip_len,) feed the model."""

    start: int
    end: int
    indices: np.ndarray  # (clip_len,) int64 absolute frame indices
    padded: bool  # True when the last sampled position is repeated to reach clip_len

    @property
    def span(self) -> int:
        """Number of video frames this window covers (its weight in the overall average)."""
        return self.end - self.start + 1


def default_hop(clip_len: int, frame_stride: int) -> int:
    """Half a window: consecutive windows overlap by half their span."""
    return max(1, clip_len * frame_stride // 2)


def plan_windows(first: int, last: int, clip_len: int, frame_stride: int, hop: int | None = None) -> list[Window]:
    """Windows over frames ``first``..``last`` (inclusive) that together cover all of them."""
    if last < first:
        raise ValueError(f"empty frame span {first}..{last}")
    if clip_len < 1 or frame_stride < 1:
        raise ValueError(f"clip_len and frame_stride must be positive, got {clip_len}, {frame_stride}")
    hop = default_hop(clip_len, frame_stride) if hop is None else int(hop)
    if hop < 1:
        raise ValueError(f"the window hop must be at least 1 frame, got {hop}")
    n = last - first + 1
    span = clip_len * frame_stride
    if n <= span:
        local = eval_clip_indices(n, clip_len, frame_stride, num_clips=1)[0]  # (clip_len,)
        padded = len(range(0, n, frame_stride)) < clip_len
        return [Window(first, last, first + local, padded)]
    starts = list(range(0, n - span + 1, hop))
    if starts[-1] + span < n:
        starts.append(n - span)
    offsets = np.arange(0, span, frame_stride, dtype=np.int64)  # (clip_len,)
    return [Window(first + s, first + s + span - 1, first + s + offsets, False) for s in starts]


def time_weighted(probs: np.ndarray, windows: list[Window]) -> np.ndarray:
    """Overall class probabilities of a track.

    Overall class probabilities: the windows' probabilities (W, C) averaged with weights equal to
    the number of frames each window covers (a padded short window counts its real frames only).
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(windows) or not windows:
        raise ValueError(f"need one probability row per window, got {probs.shape} for {len(windows)} windows")
    weights = np.asarray([w.span for w in windows], dtype=np.float64)  # (W,)
    return weights @ probs / weights.sum()  # (C,)


def nearest_window(frame: int, windows: list[Window]) -> int | None:
    """Index of the window covering ``frame`` whose centre is nearest to it (None if none covers it)."""
    best, best_dist = None, None
    for k, w in enumerate(windows):
        if w.start <= frame <= w.end:
            dist = abs((w.start + w.end) / 2 - frame)
            if best_dist is None or dist < best_dist:
                best, best_dist = k, dist
    return best
