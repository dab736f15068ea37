"""Torch Datasets over an ingested index + Parquet shards (fine-tuning and pre-training).

Each sample reads its clip's row group from the shard and decodes ONLY the sampled frames
(each distinct frame once; ``torchvision.io.decode_jpeg``, measured as fast as OpenCV and
PIL and giving identical pixels). A dataset holds plain arrays and paths, never an open file,
so it pickles cheaply into any number of DataLoader workers; shards are opened per read.
Every read checks the clip's sha256 against the index (``verify_checksums``, on by default: one
hash of the clip's ~140 KB of JPEG bytes, a few percent of a read); a damaged clip, or one whose
JPEG does not decode, is a :class:`~maedfer.data.shards.ShardError` naming the shard and the clip.
With a ``cache`` (:class:`~maedfer.data.shards.cache.ClipBytesCache`, the ``cache_mb`` setting) a clip
is read and verified once per process and later epochs take its bytes from memory: the same bytes, so
the same floats.

Randomness: the generator of sample ``i`` in epoch ``e`` is ``derive_rng(seed, e, i)``; the
temporal window and every augmentation draw come from it, so a sample is the same whatever
the number of workers. Index a dataset with ``(i, epoch)`` keys (what
:class:`~maedfer.data.distributed_sampler.EpochSampler` yields) or with ``i`` plus
:meth:`set_epoch`.

Stored size: an index ingested with ``store_size`` (metadata ``load_resize: pil_bilinear``) holds
frames larger than the model input; each decoded frame is resized to ``size`` x ``size`` with
PIL's bilinear filter before the transform (:func:`~maedfer.data.transforms.pil_bilinear_resize`),
the authors' load path. Other indices are read exactly as before.

Device data path (``decode="device"``, train and val modes): a sample is the clip's distinct frames as
JPEG bytes plus its augmentation plan (:class:`~maedfer.data.gpu.batch.ClipBytes`), drawn from the same
generator in the same order as the CPU transform draws; :class:`~maedfer.data.gpu.batch.BatchAugment`
decodes and augments whole batches on the training device. The default ``decode="cpu"`` is unchanged.

Selection of clips: ``fold`` k and ``split`` "train"/"test" keep the rows whose
``train_folds`` / ``test_folds`` list holds k; ``fold=None`` keeps every row (VoxCeleb2).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_jpeg

from maedfer.constants import IMG_SIZE, NUM_FRAMES
from maedfer.data.distributed_sampler import EpochSampler
from maedfer.data.gpu.batch import ClipBytes, collate_device
from maedfer.data.gpu.decode import jpeg_size
from maedfer.data.gpu.plan import ClipPlan, check_device_pipeline, draw_plan
from maedfer.data.sampling import (
    DEFAULT_STRIDE,
    NUM_TEST_CLIPS,
    derive_rng,
    eval_clip_indices,
    pretrain_indices,
    train_indices,
)
from maedfer.data.shards import ShardError, index_metadata, pick_frames, read_clip_frames, read_index
from maedfer.data.shards.cache import ClipBytesCache
from maedfer.data.transforms import (
    ClipTransform,
    eval_transform,
    finetune_train_transform,
    pil_bilinear_resize,
    pretrain_transform,
)

log = logging.getLogger(__name__)

LOAD_RESIZE_PIL = "pil_bilinear"  # the index metadata value written by an ingest with store_size

Split = Literal["train", "test"]
Decode = Literal["cpu", "device"]
Mode = Literal["train", "val", "test"]
SampleKey = int | tuple[int, int]


class SelectionError(ValueError):
    """The requested fold/split selects no clip of the index, or the clips lack labels."""


def decode_frames(jpegs: list[bytes]) -> torch.Tensor:
    """JPEG bytes -> uint8 RGB (N, 3, H, W); all frames must share one size."""
    data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in jpegs]
    return torch.stack(decode_jpeg(data, mode=ImageReadMode.RGB))


def select_rows(table: pa.Table, fold: int | None, split: Split | None, index_path: Path) -> np.ndarray:
    """Positions (int64) of the index rows in ``split`` of ``fold`` (all rows if fold is None)."""
    if fold is None:
        return np.arange(table.num_rows, dtype=np.int64)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folds = table.column(f"{split}_folds").to_pylist()
    keep = np.asarray([i for i, fs in enumerate(folds) if int(fold) in fs], dtype=np.int64)
    if keep.size == 0:
        available = sorted({f for fs in folds for f in fs})
        raise SelectionError(
            f"{index_path}: no clip in the {split} split of fold {fold}; the index has {split} folds "
            f"{available or 'none'} (use one of those, or fold=None to take every clip)"
        )
    return keep


class ShardClipDataset(Dataset):
    """Shared part: the selected rows as plain arrays, epoch keys, frame reading and decoding.

    ``size`` (the model input side) is the load-time resize target of an index whose metadata
    says ``load_resize: pil_bilinear``; it is unused for other indices.
    """

    def __init__(
        self,
        index_path: str | os.PathLike,
        fold: int | None = None,
        split: Split | None = None,
        stride: int = DEFAULT_STRIDE,
        clip_len: int = NUM_FRAMES,
        seed: int = 0,
        verify_checksums: bool = True,
        size: int = IMG_SIZE,
        decode: Decode = "cpu",
        cache: ClipBytesCache | None = None,
    ) -> None:
        if decode not in ("cpu", "device"):
            raise ValueError(f"decode must be 'cpu' or 'device', got {decode!r}")
        self.decode = decode
        self.cache = cache  # whole clips' bytes kept across epochs (None: read every time)
        self.index_path = Path(index_path)
        table = read_index(self.index_path)
        keep = select_rows(table, fold, split, self.index_path)
        table = table.take(pa.array(keep))
        root = self.index_path.parent
        self.metadata = index_metadata(table)
        self.load_resize = self.metadata.get("load_resize")
        if self.load_resize not in (None, LOAD_RESIZE_PIL):
            raise SelectionError(
                f"{self.index_path}: unknown load_resize {self.load_resize!r} in the index metadata; "
                "re-run the ingest stage with this version"
            )
        self.size = int(size)
        self.fold, self.split = fold, split
        self.stride, self.clip_len = int(stride), int(clip_len)
        self.seed = int(seed)
        self.epoch = 0
        # numpy arrays, not Python lists: no per-item refcounts, so forked workers share the pages
        self.clip_ids = np.asarray(table.column("clip_id").to_pylist(), dtype=np.str_)
        self.labels = np.asarray(table.column("label").to_pylist(), dtype=np.int64)
        self.num_frames = np.asarray(table.column("num_frames").to_pylist(), dtype=np.int64)
        self.rows = np.asarray(table.column("row").to_pylist(), dtype=np.int64)
        shard_names = table.column("shard").to_pylist()
        self.shard_paths: list[str] = [str(root / s) for s in sorted(set(shard_names))]
        lookup = {name: i for i, name in enumerate(sorted(set(shard_names)))}
        self.shard_ids = np.asarray([lookup[s] for s in shard_names], dtype=np.int64)
        self.checksums = np.asarray(table.column("checksum").to_pylist(), dtype=np.str_) if verify_checksums else None
        if np.any(self.num_frames < 1):
            bad = str(self.clip_ids[int(np.argmax(self.num_frames < 1))])
            raise SelectionError(f"{self.index_path}: clip {bad!r} has no frames; re-run the ingest stage")

    def __len__(self) -> int:
        return len(self.clip_ids)

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for plain integer keys (keys from EpochSampler carry their own)."""
        self.epoch = int(epoch)

    def _split_key(self, key: SampleKey) -> tuple[int, int]:
        if isinstance(key, tuple | list):
            index, epoch = int(key[0]), int(key[1])
        else:
            index, epoch = int(key), self.epoch
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} clips")
        return index, epoch

    def sample_rng(self, index: int, epoch: int) -> np.random.Generator:
        """The random generator of sample ``index`` in ``epoch`` (independent of worker and rank)."""
        return derive_rng(self.seed, epoch, index)

    def read_frames(self, index: int, frame_indices: np.ndarray) -> torch.Tensor:
        """uint8 (len(frame_indices), 3, H, W): each distinct frame decoded once."""
        jpegs, inverse = self.read_bytes(index, frame_indices)
        try:
            frames = decode_frames(jpegs)  # (U, 3, H, W)
        except RuntimeError as exc:  # bad at ingest time (the checksum matched): name shard and clip
            raise ShardError(
                f"{self.shard_paths[self.shard_ids[index]]}: clip {str(self.clip_ids[index])!r} (row "
                f"{int(self.rows[index])}) does not decode ({str(exc).splitlines()[0]}); re-run the ingest stage"
            ) from None
        if self.load_resize == LOAD_RESIZE_PIL:
            frames = pil_bilinear_resize(frames, self.size)  # (U, 3, size, size), the authors' way
        if len(jpegs) == len(inverse) and np.array_equal(inverse, np.arange(len(inverse))):
            return frames  # sorted, no repeats: nothing to gather
        return frames[torch.from_numpy(inverse)]

    def read_bytes(self, index: int, frame_indices: np.ndarray) -> tuple[list[bytes], np.ndarray]:
        """JPEG bytes of the distinct frames (sorted; checksum verified) and the gather order (T,)."""
        unique, inverse = np.unique(np.asarray(frame_indices).reshape(-1), return_inverse=True)
        shard, row = self.shard_paths[self.shard_ids[index]], int(self.rows[index])
        checksum = None if self.checksums is None else str(self.checksums[index])
        if self.cache is None:
            jpegs = read_clip_frames(shard, row, unique.tolist(), expected_checksum=checksum)
        else:  # the whole clip, verified once, then served from memory
            frames = self.cache.get((shard, row))
            if frames is None:
                frames = read_clip_frames(shard, row, None, expected_checksum=checksum)
                self.cache.put((shard, row), frames)
            jpegs = pick_frames(shard, str(self.clip_ids[index]), frames, unique.tolist())
        return jpegs, inverse.reshape(-1).astype(np.int64)

    @property
    def load_size_for_device(self) -> int | None:
        """The load-time resize the device path applies (``size`` for ``pil_bilinear`` indices, else None)."""
        return self.size if self.load_resize == LOAD_RESIZE_PIL else None

    def clip_bytes(self, index: int, label: int, frame_indices: np.ndarray, transform: ClipTransform,
                   rng: np.random.Generator) -> ClipBytes:
        """A device-path sample: bytes of the frames, then the transform's draws from ``rng``."""
        jpegs, inverse = self.read_bytes(index, frame_indices)
        if self.load_resize == LOAD_RESIZE_PIL:
            height, width = self.size, self.size
        else:
            try:
                height, width = jpeg_size(jpegs[0])
            except OSError as exc:  # not a JPEG (the checksum matched: bad at ingest time)
                raise ShardError(
                    f"{self.shard_paths[self.shard_ids[index]]}: clip {str(self.clip_ids[index])!r} (row "
                    f"{int(self.rows[index])}) does not decode ({exc}); re-run the ingest stage"
                ) from None
        steps = draw_plan(transform, height, width, rng)
        return ClipBytes.of(jpegs, ClipPlan(inverse, steps), label, index, str(self.clip_ids[index]))

    @property
    def class_names(self) -> list[str]:
        """Class names stored in the index metadata (empty when none)."""
        names = self.metadata.get("class_names")
        return list(json.loads(names)) if names else []

    @property
    def num_classes(self) -> int:
        """Number of classes: from the class names, else the largest label + 1."""
        return len(self.class_names) or int(self.labels.max(initial=-1)) + 1


class FinetuneDataset(ShardClipDataset):
    """Labelled clips for fine-tuning and evaluation.

    ``mode="train"``: random window (``train_indices``), training augmentation -> (video (C, T, H, W), label,
    clip_idx). ``mode="val"``: the same random window (as the authors' validation loader), eval transform.
    ``mode="test"``: ``num_test_clips`` windows (first and last) -> (videos (num_test_clips, C, T, H, W), label,
    clip_idx). ``clip_idx`` is the sample's position in this dataset (``dataset.clip_ids[clip_idx]``).
    """

    def __init__(
        self,
        index_path: str | os.PathLike,
        fold: int | None,
        split: Split,
        mode: Mode,
        stride: int = DEFAULT_STRIDE,
        clip_len: int = NUM_FRAMES,
        size: int = IMG_SIZE,
        seed: int = 0,
        num_test_clips: int = NUM_TEST_CLIPS,
        transform: ClipTransform | None = None,
        verify_checksums: bool = True,
        decode: Decode = "cpu",
        cache: ClipBytesCache | None = None,
    ) -> None:
        if mode not in ("train", "val", "test"):
            raise ValueError(f"mode must be 'train', 'val' or 'test', got {mode!r}")
        if decode == "device" and mode == "test":
            raise ValueError("decode='device' serves the train and val modes; the test mode reads on the CPU")
        super().__init__(index_path, fold, split, stride, clip_len, seed, verify_checksums, size, decode, cache)
        if np.any(self.labels < 0):
            bad = str(self.clip_ids[int(np.argmax(self.labels < 0))])
            raise SelectionError(
                f"{self.index_path}: clip {bad!r} is unlabelled (label -1); fine-tuning needs a labelled dataset"
            )
        self.mode = mode
        self.num_test_clips = int(num_test_clips)
        self.transform = transform or (finetune_train_transform(size) if mode == "train" else eval_transform(size))
        if decode == "device":
            check_device_pipeline(self.transform)

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, int, int] | ClipBytes:
        index, epoch = self._split_key(key)
        label = int(self.labels[index])
        n = int(self.num_frames[index])
        if self.mode == "test":
            positions = eval_clip_indices(n, self.clip_len, self.stride, self.num_test_clips)  # (K, T)
            frames = self.read_frames(index, positions)  # (K*T, 3, H, W)
            clips = frames.view(positions.shape[0], positions.shape[1], *frames.shape[1:])
            rng = self.sample_rng(index, epoch)  # unused by the deterministic eval transform
            return torch.stack([self.transform(c, rng) for c in clips]), label, index  # (K, C, T, H, W)
        rng = self.sample_rng(index, epoch)
        if self.decode == "device":
            return self.clip_bytes(index, label, train_indices(n, rng, self.clip_len, self.stride), self.transform, rng)
        frames = self.read_frames(index, train_indices(n, rng, self.clip_len, self.stride))  # (T, 3, H, W)
        return self.transform(frames, rng), label, index  # (C, T, H, W)


class PretrainDataset(ShardClipDataset):
    """Clips for masked pre-training: video (C, T, H, W) only (the model draws its masks).

    Every clip of the index by default (``fold=None``); a fold/split selects a subset.
    """

    def __init__(
        self,
        index_path: str | os.PathLike,
        stride: int = DEFAULT_STRIDE,
        clip_len: int = NUM_FRAMES,
        size: int = IMG_SIZE,
        seed: int = 0,
        fold: int | None = None,
        split: Split | None = None,
        transform: ClipTransform | None = None,
        verify_checksums: bool = True,
        decode: Decode = "cpu",
        cache: ClipBytesCache | None = None,
    ) -> None:
        super().__init__(index_path, fold, split, stride, clip_len, seed, verify_checksums, size, decode, cache)
        self.transform = transform or pretrain_transform(size)
        if decode == "device":
            check_device_pipeline(self.transform)

    def __getitem__(self, key: SampleKey) -> torch.Tensor | ClipBytes:
        index, epoch = self._split_key(key)
        rng = self.sample_rng(index, epoch)
        positions = pretrain_indices(int(self.num_frames[index]), rng, self.clip_len, self.stride)
        if self.decode == "device":
            return self.clip_bytes(index, -1, positions, self.transform, rng)
        frames = self.read_frames(index, positions)
        return self.transform(frames, rng)  # (C, T, H, W)


def make_loader(
    dataset: ShardClipDataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    num_replicas: int | None = None,
    rank: int | None = None,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    prefetch_factor: int | None = None,
) -> DataLoader:
    """A DataLoader whose :class:`EpochSampler` gives every sample its epoch.

    A DataLoader over ``dataset`` with an :class:`EpochSampler` (call ``loader.sampler.set_epoch(e)``
    before each epoch). ``drop_last`` drops the last incomplete batch of each rank. A dataset with
    ``decode="device"`` is collated by :func:`~maedfer.data.gpu.batch.collate_device` (a DeviceBatch).
    """
    sampler = EpochSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
    # Its own generator: a DataLoader without one draws its workers' base seed from the global torch RNG at
    # every iteration, so a validation pass would move the training's drop-path draws (eval_every would change
    # the run). Samples take their randomness from derive_rng, never from the worker seed.
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
        collate_fn=collate_device if getattr(dataset, "decode", "cpu") == "device" else None,
        generator=generator,
    )
