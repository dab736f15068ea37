"""Temporal sampling: hand-computed indices (window, stride, short-clip padding, 2-clip test), determinism."""

from __future__ import annotations

import numpy as np
import pytest

from maedfer.data.sampling import derive_rng, eval_clip_indices, pretrain_indices, train_indices


class FixedDraw:
    """A stand-in Generator whose integers(low, high) returns a chosen value (checked to be in range)."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.calls: list[tuple[int, int]] = []

    def integers(self, low: int, high: int | None = None) -> int:
        if high is None:
            low, high = 0, low
        self.calls.append((low, high))
        assert low <= self.value < high
        return self.value


def test_train_window_by_hand():
    # 100 frames, stride 4: window 64; end drawn in [64, 100); end=70 -> start 6, linspace(6, 70, 16).
    draw = FixedDraw(70)
    idx = train_indices(100, draw, clip_len=16, stride=4)
    assert draw.calls == [(64, 100)]
    assert idx.tolist() == [6, 10, 14, 18, 23, 27, 31, 35, 40, 44, 48, 52, 57, 61, 65, 69]
    assert idx.dtype == np.int64


def test_train_window_bounds_over_many_draws():
    for seed in range(200):
        rng = derive_rng(seed)
        n = int(rng.integers(65, 400))
        idx = train_indices(n, rng, 16, 4)
        assert len(idx) == 16 and idx.min() >= 0 and idx.max() <= n - 1
        assert np.all(np.diff(idx) >= 4) and np.all(np.diff(idx) <= 5)  # evenly spaced at ~64/15
        assert idx.max() - idx.min() <= 63


def test_train_short_clip_is_padded_with_last_frame():
    # 30 frames <= 64: 30 // 4 = 7 evenly spaced over [0, 30] (30 clipped to 29), then 9 x frame 29.
    assert train_indices(30, FixedDraw(0), 16, 4).tolist() == [0, 5, 10, 15, 20, 25, 29] + [29] * 9
    # exactly the window: no padding, no random draw
    assert train_indices(64, FixedDraw(0), 16, 4).tolist() == [
        0, 4, 8, 12, 17, 21, 25, 29, 34, 38, 42, 46, 51, 55, 59, 63
    ]  # fmt: skip
    # fewer frames than the stride: only the last frame
    assert train_indices(3, FixedDraw(0), 16, 4).tolist() == [2] * 16
    assert train_indices(1, FixedDraw(0), 16, 4).tolist() == [0] * 16


def test_train_stride_one_ferv39k():
    assert train_indices(10, FixedDraw(0), 16, 1).tolist() == list(range(10)) + [9] * 6
    # long clip at stride 1: 16 consecutive frames
    draw = FixedDraw(40)
    assert train_indices(50, draw, 16, 1).tolist() == list(range(24, 40))
    assert draw.calls == [(16, 50)]


def test_test_two_clips_first_and_last():
    # 100 frames at stride 4: positions 0, 4, ..., 96 (25); clips = positions[0:16] and positions[9:25].
    clips = eval_clip_indices(100, 16, 4, 2)
    assert clips.shape == (2, 16)
    assert clips[0].tolist() == list(range(0, 64, 4))
    assert clips[1].tolist() == list(range(36, 100, 4))


def test_test_short_clip_padding():
    # 30 frames: positions 0..28 (8) padded to 16 with 28; both clips are that.
    expected = [0, 4, 8, 12, 16, 20, 24, 28] + [28] * 8
    clips = eval_clip_indices(30, 16, 4, 2)
    assert clips.tolist() == [expected, expected]
    # exactly 16 positions: one window, twice
    assert eval_clip_indices(61, 16, 4, 2).tolist() == [list(range(0, 61, 4))] * 2
    # uneven step: 18 positions, 3 clips: step (18-16)/2 = 1 -> starts 0, 1, 2
    three = eval_clip_indices(72, 16, 4, 3)
    assert [c[0] for c in three.tolist()] == [0, 4, 8]


def test_test_stride_one_and_single_clip():
    clips = eval_clip_indices(40, 16, 1, 2)
    assert clips[0].tolist() == list(range(16)) and clips[1].tolist() == list(range(24, 40))
    assert eval_clip_indices(40, 16, 1, 1).tolist() == [list(range(16))]


def test_pretrain_by_hand():
    # 100 frames: start drawn in [0, 100 - 64 + 1) = [0, 37)
    draw = FixedDraw(10)
    assert pretrain_indices(100, draw, 16, 4).tolist() == list(range(10, 74, 4))
    assert draw.calls == [(0, 37)]
    # start at the last possible position still fits
    assert pretrain_indices(100, FixedDraw(36), 16, 4).tolist() == list(range(36, 100, 4))
    # the authors' short-clip rule: the offset stops advancing once offset + stride >= num_frames (1-based)
    assert pretrain_indices(10, FixedDraw(0), 16, 4).tolist() == [0, 4, 8] + [8] * 13
    assert pretrain_indices(9, FixedDraw(0), 16, 4).tolist() == [0, 4] + [4] * 14
    assert pretrain_indices(64, FixedDraw(0), 16, 4).tolist() == list(range(0, 64, 4))


def test_pretrain_bounds_over_many_draws():
    for seed in range(200):
        rng = derive_rng(seed, 1)
        n = int(rng.integers(1, 300))
        idx = pretrain_indices(n, rng, 16, 4)
        assert len(idx) == 16 and idx.min() >= 0 and idx.max() <= n - 1
        assert np.all(np.diff(idx) >= 0)


def test_derive_rng_determinism_and_independence():
    a = derive_rng(3, 1, 5).integers(0, 2**31, size=8)
    b = derive_rng(3, 1, 5).integers(0, 2**31, size=8)
    c = derive_rng(3, 1, 6).integers(0, 2**31, size=8)
    d = derive_rng(3, 2, 5).integers(0, 2**31, size=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)
    with pytest.raises(ValueError, match="non-negative"):
        derive_rng(0, -1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one frame"):
        train_indices(0, derive_rng(0))
    with pytest.raises(ValueError, match="positive"):
        eval_clip_indices(10, 16, 0)
