"""Which data path a training run uses: the ``data_path`` setting ("auto", "cpu" or "device")."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

DATA_PATHS = ("auto", "cpu", "device")


def resolve_data_path(value: str | None, device: torch.device | str, key: str = "data_path") -> str:
    """``"cpu"`` or ``"device"`` for the setting ``value`` on ``device``.

    "auto" (or None) is "device" on a CUDA device and "cpu" elsewhere (so CPU runs keep the CPU path
    and its numbers); "device" on a CPU device runs the device path on CPU tensors (tests, benchmarks).
    """
    value = "auto" if value is None else value
    if value not in DATA_PATHS:
        raise ValueError(f"{key}: {value!r} is not a data path; use one of {', '.join(DATA_PATHS)}")
    if value == "auto":
        return "device" if torch.device(device).type == "cuda" else "cpu"
    return value
