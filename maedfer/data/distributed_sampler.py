"""A DistributedSampler that also tells the dataset the epoch, and de-duplication of padded eval shares.

:class:`EpochSampler` is ``torch.utils.data.DistributedSampler`` (each rank gets every
``num_replicas``-th position of a permutation seeded with ``seed + epoch``, padded by repeating
positions so that all ranks get the same count), except that it yields ``(index, epoch)`` keys.
The datasets of :mod:`maedfer.data.datasets` accept such keys and seed each sample's generator
from (seed, epoch, index): a sample's frames and augmentation then depend on nothing else, not
on the number of workers, not on persistent workers that never saw ``set_epoch``.

Without an initialised process group it behaves as a single rank (``num_replicas=1``).
For evaluation (``shuffle=False``) the padding repeats the first positions; gather the
``clip_idx`` each sample returns and drop repeats with :func:`deduplicate`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler


class EpochSampler(DistributedSampler):
    """A DistributedSampler that yields (index, epoch) keys, so datasets draw their randomness per epoch."""
    def __init__(
        self,
        dataset: Sized,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if num_replicas is None:
            num_replicas = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if rank is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        epoch = int(self.epoch)
        for index in super().__iter__():
            yield int(index), epoch


def deduplicate(clip_idx: torch.Tensor, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Keep the first occurrence of each clip index (gathered from all ranks), sorted by index.

    Returns ``(unique_clip_idx, *values_at_those_positions)``; each of ``values`` has the
    samples along dim 0 (logits (N, K), labels (N,), ...).
    """
    clip_idx = clip_idx.reshape(-1)
    unique, inverse = torch.unique(clip_idx, sorted=True, return_inverse=True)
    positions = torch.arange(clip_idx.numel(), device=clip_idx.device)
    first = torch.full((unique.numel(),), clip_idx.numel(), dtype=torch.long, device=clip_idx.device)
    first = first.scatter_reduce(0, inverse, positions, reduce="amin")
    return (unique, *(v[first] for v in values))
