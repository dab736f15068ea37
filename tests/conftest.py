"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

import os

import pytest
import torch

from maedfer.runtime import portable_cpu_numerics

portable_cpu_numerics()  # the tests run the kernels the stages run (before any tensor work), in process and in children
os.environ.setdefault("MAEDFER_LOGLEVEL", "WARNING")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def tiny_clip() -> torch.Tensor:
    """Two 8 x 64 x 64 clips (4 x 4 x 4 token grid), normalised-looking values."""
    return torch.randn(2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(0))
