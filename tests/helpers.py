"""Helpers shared by test modules (import as ``from tests.helpers import ...``)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent / "data"

# Geometry of the tiny models used across model tests: 4x4x4 token grid.
TINY = dict(img_size=64, num_frames=8)


def read_official_keys(name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of an official checkpoint, from tests/data/official_keys/<name>_state_dict.txt."""
    out = {}
    for line in (DATA / "official_keys" / f"official_{name}_state_dict.txt").read_text().splitlines():
        if line.strip():
            key, shape = line.split(" ", 1)
            out[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return out
