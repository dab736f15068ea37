"""Dataset adapters: one per dataset, each reading its owners' layout (see DATASETS.md).

Usage: ``adapter = get_adapter("dfew", "data/raw/dfew")``; ``adapter.records()`` validates the layout
(raising :class:`LayoutError`) and iterates over :class:`~maedfer.data.records.ClipRecord` objects in
a deterministic order; afterwards ``adapter.skipped`` lists ``(id or path, reason)`` of unusable entries.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from maedfer.data.adapters.base import FRAME_EXTENSIONS, DatasetAdapter, LayoutError
from maedfer.data.adapters.cremad import CremaDAdapter
from maedfer.data.adapters.custom import CustomAdapter
from maedfer.data.adapters.dfew import DFEWAdapter
from maedfer.data.adapters.enterface import ENTERFACEAdapter
from maedfer.data.adapters.ferv39k import FERV39kAdapter
from maedfer.data.adapters.mafw import MAFWAdapter
from maedfer.data.adapters.ravdess import RAVDESSAdapter
from maedfer.data.adapters.voxceleb2 import VoxCeleb2Adapter

ADAPTERS: dict[str, type[DatasetAdapter]] = {
    cls.name: cls
    for cls in (
        VoxCeleb2Adapter,
        DFEWAdapter,
        FERV39kAdapter,
        MAFWAdapter,
        CremaDAdapter,
        RAVDESSAdapter,
        ENTERFACEAdapter,
        CustomAdapter,
    )
}


def get_adapter(name: str, root: str | os.PathLike, **options: Any) -> DatasetAdapter:
    """The adapter for dataset ``name`` (a key of :data:`ADAPTERS`) reading the folder ``root``."""
    try:
        cls = ADAPTERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(ADAPTERS)}") from None
    return cls(root, **options)


def dataset_stride(entry: Mapping[str, Any]) -> int:
    """The temporal stride of a params file's ``datasets`` entry: its ``stride``, else its adapter's default.

    ``entry`` holds at least ``adapter`` (a key of :data:`ADAPTERS`); e.g. FERV39k defaults to 1, the others to
    :data:`maedfer.constants.DEFAULT_STRIDE`.
    """
    if "stride" in entry:
        return int(entry["stride"])
    return ADAPTERS[str(entry["adapter"]).lower()].default_stride


__all__ = [
    "ADAPTERS",
    "FRAME_EXTENSIONS",
    "DatasetAdapter",
    "LayoutError",
    "dataset_stride",
    "get_adapter",
    "CremaDAdapter",
    "DFEWAdapter",
    "ENTERFACEAdapter",
    "FERV39kAdapter",
    "MAFWAdapter",
    "RAVDESSAdapter",
    "VoxCeleb2Adapter",
]
