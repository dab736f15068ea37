"""What one ingest run did: the report written to ``<out>/report.json``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any


@dataclass
class IngestReport:
    """What one ``ingest`` call did (also written to ``<out>/report.json``)."""

    dataset: str
    out: str
    face_mode: str
    size: int
    seen: int = 0  # records read from the adapter
    stored: int = 0  # clips in the index
    written: int = 0  # clips decoded and written by this run
    reused: int = 0  # clips already in finished shards (resume / re-run)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> clip ids
    skipped_detail: dict[str, str] = field(default_factory=dict)  # clip id -> message
    # clip id -> counts of a skip that has them (decoded_short: decoded_frames, container_frames)
    skipped_counts_detail: dict[str, dict[str, Any]] = field(default_factory=dict)
    adapter_skipped: list[Any] = field(default_factory=list)  # what the adapter left out
    class_names: list[str] = field(default_factory=list)
    frames_written: int = 0
    frames_stored: int = 0
    shards: int = 0
    bytes_on_disk: int = 0  # index + shards the index refers to
    seconds: float = 0.0
    frames_per_second: float = 0.0  # frames written / seconds
    up_to_date: bool = False  # True when this run changed no file

    @property
    def num_skipped(self) -> int:
        """Number of clips skipped, over all reasons."""
        return sum(len(v) for v in self.skipped.values())

    def to_json(self) -> dict[str, Any]:
        """The report as written to ``report.json`` (with per-reason counts)."""
        data = asdict(self)
        data["skipped_counts"] = {reason: len(ids) for reason, ids in sorted(self.skipped.items())}
        data["num_skipped"] = self.num_skipped
        return data


def jsonable(item: Any) -> Any:
    """``item`` as plain JSON values (dataclasses and mappings recursively; anything else as its str)."""
    if is_dataclass(item) and not isinstance(item, type):
        return {k: jsonable(v) for k, v in asdict(item).items()}
    if isinstance(item, Mapping):
        return {str(k): jsonable(v) for k, v in item.items()}
    if isinstance(item, list | tuple):
        return [jsonable(v) for v in item]
    if isinstance(item, str | int | float | bool) or item is None:
        return item
    return str(item)
