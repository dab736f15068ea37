"""Datasets over index + shards: frames read, fold selection, modes, determinism across workers, DDP shares."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from maedfer.constants import IMAGENET_MEAN, IMAGENET_STD
from maedfer.data.datasets import FinetuneDataset, PretrainDataset, SelectionError, make_loader
from maedfer.data.distributed_sampler import EpochSampler, deduplicate
from maedfer.data.sampling import derive_rng, eval_clip_indices, pretrain_indices, train_indices
from maedfer.data.shards import ShardWriter, build_index_table, write_index

SIZE = 32
# clip lengths: short (padding), exactly one window, long
LENGTHS = [5, 30, 64, 100, 77, 12, 90, 41]


def frame_image(clip: int, k: int, size: int = SIZE) -> np.ndarray:
    """RGB frame whose mean R / G encode the frame number k (robust to JPEG) and B the clip; plus texture."""
    img = np.empty((size, size, 3), np.float32)
    img[..., 0] = 16 * (k % 16) + 8
    img[..., 1] = 16 * (k // 16) + 8
    img[..., 2] = 20 * (clip % 12) + 10
    y, x = np.mgrid[0:size, 0:size]
    img += (4 * np.sin(x / 3.0 + k) * np.cos(y / 4.0))[..., None]  # zero-mean texture
    return np.clip(img, 0, 255).astype(np.uint8)


def frame_number(frames: torch.Tensor) -> list[int]:
    """Inverse of frame_image for uint8 (N, 3, H, W)."""
    means = frames.float().mean(dim=(2, 3))
    return [int(round((r - 8) / 16)) + 16 * int(round((g - 8) / 16)) for r, g in means[:, :2].tolist()]


def write_toy_index(out, lengths=LENGTHS, labelled=True, shard_bytes=40_000):
    """Index + shards (several shards) via the project's ShardWriter; folds: clip i tests in fold i % 2 + 1."""
    rows = []
    with ShardWriter(out, "toy-settings", shard_bytes) as writer:
        for i, n in enumerate(lengths):
            frames = []
            for k in range(n):
                ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame_image(i, k), cv2.COLOR_RGB2BGR))
                frames.append(buf.tobytes())
            c = writer.add(f"clip{i:03d}", frames, height=SIZE, width=SIZE, fps=25.0, key=f"k{i}")
            test_fold = i % 2 + 1
            rows.append(
                dict(
                    clip_id=c.clip_id,
                    label=(i % 3) if labelled else -1,
                    label_name=f"class{i % 3}" if labelled else "",
                    subject=None,
                    train_folds=[f for f in (1, 2) if f != test_fold],
                    test_folds=[test_fold],
                    shard=c.shard,
                    row=c.row,
                    num_frames=c.num_frames,
                    height=SIZE,
                    width=SIZE,
                    fps=25.0,
                    checksum=c.checksum,
                    source=f"v/{c.clip_id}.mp4",
                )
            )
    index = out / "index.parquet"
    write_index(index, build_index_table(rows, {"dataset": "toy", "class_names": '["a", "b", "c"]'}))
    return index


@pytest.fixture(scope="module")
def toy_index(tmp_path_factory):
    return write_toy_index(tmp_path_factory.mktemp("toy"))


def raw(clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Identity transform: returns the decoded uint8 frames (T, 3, H, W)."""
    return clip


def test_fold_selection(toy_index):
    all_clips = FinetuneDataset(toy_index, None, "train", "val", transform=raw)
    assert len(all_clips) == len(LENGTHS) and all_clips.num_classes == 3
    assert all_clips.class_names == ["a", "b", "c"]
    test1 = FinetuneDataset(toy_index, 1, "test", "test", transform=raw)
    train1 = FinetuneDataset(toy_index, 1, "train", "train", transform=raw)
    assert test1.clip_ids.tolist() == [f"clip{i:03d}" for i in range(0, len(LENGTHS), 2)]
    assert sorted(test1.clip_ids.tolist() + train1.clip_ids.tolist()) == all_clips.clip_ids.tolist()
    with pytest.raises(SelectionError, match=r"index.parquet: no clip in the test split of fold 3.*\[1, 2\]"):
        FinetuneDataset(toy_index, 3, "test", "test")
    with pytest.raises(ValueError, match="mode"):
        FinetuneDataset(toy_index, 1, "train", "training")


def test_unlabelled_index_only_for_pretraining(tmp_path):
    index = write_toy_index(tmp_path, lengths=[20, 70], labelled=False)
    with pytest.raises(SelectionError, match=r"index.parquet: clip 'clip000' is unlabelled"):
        FinetuneDataset(index, None, "train", "train")
    ds = PretrainDataset(index, size=SIZE)
    assert len(ds) == 2 and ds[0].shape == (3, 16, SIZE, SIZE)


def test_train_and_val_read_the_sampled_frames(toy_index):
    for mode in ("train", "val"):
        ds = FinetuneDataset(toy_index, None, "train", mode, seed=7, transform=raw)
        ds.set_epoch(3)
        for i, n in enumerate(LENGTHS):
            frames, label, clip_idx = ds[i]
            expected = train_indices(n, derive_rng(7, 3, i), 16, 4)
            assert frames.shape == (16, 3, SIZE, SIZE) and frames.dtype == torch.uint8
            assert frame_number(frames) == expected.tolist()
            assert label == i % 3 and clip_idx == i
            # (index, epoch) keys override set_epoch
            assert torch.equal(ds[(i, 3)][0], frames)


def test_test_mode_two_clips(toy_index):
    ds = FinetuneDataset(toy_index, None, "train", "test", transform=raw)
    for i, n in enumerate(LENGTHS):
        clips, label, clip_idx = ds[i]
        expected = eval_clip_indices(n, 16, 4, 2)
        assert clips.shape == (2, 16, 3, SIZE, SIZE)
        assert [frame_number(c) for c in clips] == expected.tolist()
    videos, _, _ = FinetuneDataset(toy_index, None, "train", "test", size=SIZE)[3]
    assert videos.shape == (2, 3, 16, SIZE, SIZE) and videos.dtype == torch.float32


def test_stride_one(toy_index):
    ds = FinetuneDataset(toy_index, None, "train", "train", stride=1, transform=raw)
    frames, _, _ = ds[(3, 0)]
    numbers = frame_number(frames)
    assert np.all(np.diff(numbers) == 1)


def test_pretrain_frames(toy_index):
    ds = PretrainDataset(toy_index, seed=1, transform=raw)
    for i, n in enumerate(LENGTHS):
        assert frame_number(ds[(i, 2)]) == pretrain_indices(n, derive_rng(1, 2, i), 16, 4).tolist()
    video = PretrainDataset(toy_index, size=SIZE)[0]
    assert video.shape == (3, 16, SIZE, SIZE) and video.dtype == torch.float32


def test_dataset_pickles_small_and_checksums(toy_index):
    ds = FinetuneDataset(toy_index, None, "train", "train", size=SIZE, verify_checksums=True)
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000  # paths and small arrays, no table, no open file
    clone = pickle.loads(blob)
    assert torch.equal(clone[(2, 1)][0], ds[(2, 1)][0])


def batches(loader: DataLoader, epoch: int) -> list:
    loader.sampler.set_epoch(epoch)
    return list(loader)


@pytest.mark.slow
def test_same_batches_with_0_and_2_workers(toy_index):
    def loader(workers):
        ds = FinetuneDataset(toy_index, None, "train", "train", size=SIZE, seed=11)
        return make_loader(ds, batch_size=4, shuffle=True, seed=5, num_workers=workers, drop_last=True)

    single, multi = loader(0), loader(2)
    for epoch in (0, 1):
        a, b = batches(single, epoch), batches(multi, epoch)
        assert len(a) == len(b) == 2
        for (xa, ya, ia), (xb, yb, ib) in zip(a, b, strict=True):
            assert xa.shape == (4, 3, 16, SIZE, SIZE)
            assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ia, ib)
    assert not torch.equal(batches(single, 0)[0][0], batches(single, 1)[0][0])
    # persistent workers: the epoch travels with the keys, not with the (stale) dataset copy
    persistent = make_loader(
        FinetuneDataset(toy_index, None, "train", "train", size=SIZE, seed=11),
        batch_size=4, shuffle=True, seed=5, num_workers=2, drop_last=True, persistent_workers=True,
    )  # fmt: skip
    for epoch in (0, 1):
        for (xa, _, _), (xb, _, _) in zip(batches(single, epoch), batches(persistent, epoch), strict=True):
            assert torch.equal(xa, xb)


def test_ddp_shares_disjoint_and_covering(toy_index):
    ds = FinetuneDataset(toy_index, None, "train", "val", size=SIZE)
    shares = [list(EpochSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=3)) for r in (0, 1)]
    idx = [{i for i, _ in s} for s in shares]
    assert len(shares[0]) == len(shares[1]) == len(ds) // 2
    assert idx[0].isdisjoint(idx[1]) and idx[0] | idx[1] == set(range(len(ds)))
    assert all(e == 0 for s in shares for _, e in s)
    again = list(EpochSampler(ds, num_replicas=2, rank=0, shuffle=True, seed=3))
    assert again == shares[0]
    moved = EpochSampler(ds, num_replicas=2, rank=0, shuffle=True, seed=3)
    moved.set_epoch(1)
    assert [i for i, _ in moved] != [i for i, _ in shares[0]] and all(e == 1 for _, e in moved)
    # uneven split for evaluation: 8 clips over 3 ranks -> padded to 9; de-duplicate by clip_idx
    evals = [list(EpochSampler(ds, num_replicas=3, rank=r, shuffle=False)) for r in range(3)]
    gathered = torch.tensor([i for s in evals for i, _ in s])
    assert gathered.numel() == 9 and set(gathered.tolist()) == set(range(len(ds)))
    scores = gathered.float() * 10
    unique, kept = deduplicate(gathered, scores)
    assert unique.tolist() == list(range(len(ds))) and torch.equal(kept, unique.float() * 10)


def test_normalised_batch_statistics(toy_index):
    ds = FinetuneDataset(toy_index, None, "train", "val", size=SIZE)
    raw_ds = FinetuneDataset(toy_index, None, "train", "val", transform=raw)
    x = torch.stack([ds[i][0] for i in range(len(ds))])  # (B, C, T, H, W)
    r = torch.stack([raw_ds[i][0] for i in range(len(ds))]).float() / 255  # (B, T, C, H, W)
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    expected = (r.mean(dim=(0, 1, 3, 4)) - mean) / std
    torch.testing.assert_close(x.mean(dim=(0, 2, 3, 4)), expected, atol=1e-4, rtol=1e-4)
    assert torch.isfinite(x).all() and x.abs().max() < 3.0  # within the ImageNet-normalised range
    train = FinetuneDataset(toy_index, None, "train", "train", size=SIZE)
    xt = torch.stack([train[(i, 0)][0] for i in range(len(train))])
    assert xt.shape == x.shape and xt.dtype == torch.float32
    assert -2.5 < xt.mean() < 2.5 and 0.05 < xt.std() < 3.0
