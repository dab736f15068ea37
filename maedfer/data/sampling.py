"""Temporal sampling: which stored frames of a clip feed the model (the authors' rules).

Three rules, each a pure function of the clip length (and a numpy Generator where random):

* :func:`train_indices` (fine-tuning, train and val modes): ``clip_len`` indices evenly
  spaced over a random window of ``clip_len * stride`` frames; a clip that is not longer
  than the window takes ``num_frames // stride`` evenly spaced indices over the whole clip
  and is padded by repeating its last frame.
* :func:`eval_clip_indices` (fine-tuning, test mode): every ``stride``-th frame, padded with the
  last one to at least ``clip_len``; then ``num_clips`` windows of ``clip_len`` consecutive
  positions, evenly spaced from the first to the last (2 clips: the first and the last 16).
* :func:`pretrain_indices` (pre-training): ``clip_len`` frames at ``stride`` from a random
  start; near the end of a short clip the index stops advancing (the last one repeats).

The arithmetic (linspace + clip + truncation, and the 1-based offset loop of pre-training)
follows the authors' VideoMAE-derived loaders exactly, quirks included, so that the same
draws give the same frames.

:func:`derive_rng` gives the per-sample generator from (seed, epoch, index, ...), which makes
every random choice of a loader independent of worker count and order.
"""

from __future__ import annotations

import numpy as np

from maedfer.constants import DEFAULT_STRIDE, NUM_FRAMES

NUM_TEST_CLIPS: int = 2


def derive_rng(seed: int, *keys: int) -> np.random.Generator:
    """A numpy Generator that depends only on ``seed`` and ``keys`` (e.g. epoch, sample index).

    All values must be non-negative integers; different key tuples give independent streams.
    """
    entropy = [int(seed), *(int(k) for k in keys)]
    if any(v < 0 for v in entropy):
        raise ValueError(f"derive_rng: seed and keys must be non-negative, got {entropy}")
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _check(num_frames: int, clip_len: int, stride: int) -> None:
    if num_frames < 1:
        raise ValueError(f"a clip needs at least one frame, got num_frames={num_frames}")
    if clip_len < 1 or stride < 1:
        raise ValueError(f"clip_len and stride must be positive, got clip_len={clip_len}, stride={stride}")


def train_indices(
    num_frames: int, rng: np.random.Generator, clip_len: int = NUM_FRAMES, stride: int = DEFAULT_STRIDE
) -> np.ndarray:
    """Frame indices (clip_len,) int64 for one training clip."""
    _check(num_frames, clip_len, stride)
    window = clip_len * stride
    if num_frames <= window:
        count = num_frames // stride
        index = np.linspace(0, num_frames, num=count)
        index = np.concatenate([index, np.full(clip_len - count, float(num_frames))])
        return np.clip(index, 0, num_frames - 1).astype(np.int64)
    end = int(rng.integers(window, num_frames))  # in [window, num_frames)
    start = end - window
    index = np.linspace(start, end, num=clip_len)
    return np.clip(index, start, end - 1).astype(np.int64)


def eval_clip_indices(
    num_frames: int, clip_len: int = NUM_FRAMES, stride: int = DEFAULT_STRIDE, num_clips: int = NUM_TEST_CLIPS
) -> np.ndarray:
    """Frame indices (num_clips, clip_len) int64: windows over the frames taken at ``stride``.

    With one clip it is the first window (the authors' code needs at least two).
    """
    _check(num_frames, clip_len, stride)
    if num_clips < 1:
        raise ValueError(f"num_clips must be positive, got {num_clips}")
    positions = list(range(0, num_frames, stride))
    positions += [positions[-1]] * max(0, clip_len - len(positions))
    step = max((len(positions) - clip_len) / (num_clips - 1), 0.0) if num_clips > 1 else 0.0
    starts = [int(k * step) for k in range(num_clips)]
    return np.asarray([positions[s : s + clip_len] for s in starts], dtype=np.int64)


def pretrain_indices(
    num_frames: int, rng: np.random.Generator, clip_len: int = NUM_FRAMES, stride: int = DEFAULT_STRIDE
) -> np.ndarray:
    """Frame indices (clip_len,) int64 for one pre-training clip."""
    _check(num_frames, clip_len, stride)
    span = num_frames - clip_len * stride + 1
    offset = (int(rng.integers(span)) if span > 0 else 0) + 1  # 1-based, as the authors'
    index = []
    for _ in range(clip_len):
        index.append(offset - 1)
        if offset + stride < num_frames:
            offset += stride
    return np.asarray(index, dtype=np.int64)
