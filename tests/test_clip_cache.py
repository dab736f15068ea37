"""The clip byte cache: LRU bound, identical samples with and without it, checksums still verified."""

from __future__ import annotations

import pickle

import pytest
import torch

from maedfer.data.datasets import FinetuneDataset, PretrainDataset
from maedfer.data.shards import ShardChecksumError, read_index
from maedfer.data.shards.cache import ClipBytesCache
from tests.test_datasets import SIZE, write_toy_index


def test_lru_keeps_the_recent_clips_within_the_bound():
    cache = ClipBytesCache(100)
    cache.put("a", [b"x" * 40])
    cache.put("b", [b"y" * 30, b"y" * 10])
    assert cache.get("a") == [b"x" * 40] and cache.used_bytes == 80  # "a" is now the most recent
    cache.put("c", [b"z" * 50])  # over 100: the least recently used ("b") goes
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    assert cache.used_bytes == 90 and len(cache) == 2
    cache.put("huge", [b"h" * 101])  # one clip over the bound is not kept and evicts nothing
    assert cache.get("huge") is None and len(cache) == 2
    cache.put("a", [b"x" * 10])  # replacing a key re-counts its size
    assert cache.used_bytes == 60
    assert (cache.hits, cache.misses) == (3, 2) and "hit rate 60 %" in cache.stats()
    assert ClipBytesCache.of_megabytes(0) is None and ClipBytesCache.of_megabytes(2).max_bytes == 2 << 20
    with pytest.raises(ValueError, match="max_bytes"):
        ClipBytesCache(-1)


def test_a_pickled_cache_starts_empty_with_the_same_bound():
    cache = ClipBytesCache(1000)
    cache.put("a", [b"x" * 10])
    clone = pickle.loads(pickle.dumps(cache))
    assert len(clone) == 0 and clone.max_bytes == 1000 and clone.used_bytes == 0


@pytest.fixture()
def toy(tmp_path):
    return write_toy_index(tmp_path)


def test_cached_samples_equal_uncached_ones_over_epochs(toy):
    cache = ClipBytesCache(1 << 24)
    plain = FinetuneDataset(toy, 1, "train", "train", size=SIZE, seed=3)
    cached = FinetuneDataset(toy, 1, "train", "train", size=SIZE, seed=3, cache=cache)
    tests = (FinetuneDataset(toy, 1, "test", "test", size=SIZE), FinetuneDataset(toy, 1, "test", "test", size=SIZE,
                                                                                  cache=cache))
    for epoch in (0, 1, 2):
        for i in range(len(plain)):
            assert torch.equal(plain[(i, epoch)][0], cached[(i, epoch)][0])
    for i in range(len(tests[0])):
        assert torch.equal(tests[0][i][0], tests[1][i][0])
    assert len(cache) == len(plain) + len(tests[0]) and cache.hits == 2 * len(plain)  # epochs 1 and 2 from memory
    pre = PretrainDataset(toy, size=SIZE, seed=1, cache=ClipBytesCache(1 << 24))
    assert torch.equal(pre[(2, 1)], PretrainDataset(toy, size=SIZE, seed=1)[(2, 1)])


def test_a_damaged_clip_is_refused_before_it_enters_the_cache(toy):
    table = read_index(toy)
    shard = toy.parent / table.column("shard")[0].as_py()
    raw = bytearray(shard.read_bytes())
    at = raw.find(b"\xff\xd8", 64)  # inside the first clip's first JPEG
    raw[at + 200] ^= 0xFF
    shard.write_bytes(bytes(raw))
    cache = ClipBytesCache(1 << 24)
    ds = PretrainDataset(toy, size=SIZE, cache=cache)
    with pytest.raises(ShardChecksumError, match="clip000"):
        ds[0]
    assert len(cache) == 0


@pytest.mark.parametrize("cached", [False, True])
def test_a_frame_past_the_clip_end_names_the_shard_and_clip(toy, cached):
    ds = PretrainDataset(toy, size=SIZE, cache=ClipBytesCache(1 << 24) if cached else None)
    length = int(read_index(toy).column("num_frames")[0].as_py())
    with pytest.raises(IndexError, match=rf"clip000'? has {length} frames, asked for \[0, {length}\]"):
        ds.read_bytes(0, [0, length])
