"""A bounded in-memory cache of clips' JPEG bytes, so that epochs after the first skip the Parquet reads.

Reading one clip's row group costs 1-2 ms (footer lookup, row-group read, one ``bytes`` object per
frame); a tiny model on a CPU trains on a clip in about as long, so on a small dataset re-reading
every clip every epoch is a large part of a run. A cache holds whole clips (every frame, checksum
verified once when read), evicts the least recently used clip when ``max_bytes`` is exceeded, and
returns exactly the bytes a read would: training with and without it gives the same floats.

Each process (and each DataLoader worker: it gets a copy of the dataset) has its own cache, so the
memory it may take is ``max_bytes`` times the reading processes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class ClipBytesCache:
    """LRU of clip key -> the clip's frames (JPEG bytes), bounded by their total size in bytes."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.used_bytes = 0
        self.hits = 0
        self.misses = 0
        self._clips: OrderedDict[Hashable, tuple[list[bytes], int]] = OrderedDict()

    @classmethod
    def of_megabytes(cls, megabytes: int) -> ClipBytesCache | None:
        """A cache of ``megabytes`` MiB, or None for 0 (no caching)."""
        return cls(int(megabytes) << 20) if megabytes > 0 else None

    def __getstate__(self) -> dict:
        """Pickled (a DataLoader worker started by spawn) as an empty cache of the same bound."""
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_bytes"])

    def __len__(self) -> int:
        return len(self._clips)

    def get(self, key: Hashable) -> list[bytes] | None:
        """The clip's frames, or None (a miss); a hit becomes the most recently used clip."""
        entry = self._clips.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._clips.move_to_end(key)
        return entry[0]

    def put(self, key: Hashable, frames: list[bytes]) -> None:
        """Keep ``frames`` (unless one clip alone is over the bound), evicting the least recently used clips."""
        size = sum(len(f) for f in frames)
        if size > self.max_bytes:
            return
        old = self._clips.pop(key, None)
        if old is not None:
            self.used_bytes -= old[1]
        while self._clips and self.used_bytes + size > self.max_bytes:
            _, (_, evicted) = self._clips.popitem(last=False)
            self.used_bytes -= evicted
        self._clips[key] = (frames, size)
        self.used_bytes += size

    def stats(self) -> str:
        """One line for the log: clips held, MiB used of the bound, hit rate."""
        total = self.hits + self.misses
        rate = f"{100 * self.hits / total:.0f} %" if total else "-"
        return (f"{len(self)} clips, {self.used_bytes / 2**20:.0f} of {self.max_bytes / 2**20:.0f} MiB, "
                f"hit rate {rate} of {total} reads")
