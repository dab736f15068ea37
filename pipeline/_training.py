"""What the two training stages (pretrain, finetune) share beyond :mod:`pipeline._stage`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def settings_from_json(flags: dict[str, Any]) -> dict[str, Any]:
    """Explicit setting flags with ``--arch-kwargs`` decoded from JSON (a ValueError names the flag)."""
    out = dict(flags)
    if "arch_kwargs" in out:
        try:
            out["arch_kwargs"] = json.loads(out["arch_kwargs"])
        except json.JSONDecodeError as exc:
            raise ValueError(f"--arch-kwargs: not valid JSON ({exc}); e.g. '{{\"pool\": \"local\"}}'") from None
    return out


def require_index(index: str | Path) -> Path:
    """``index`` as a Path; FileNotFoundError with how to build it when it is missing."""
    path = Path(index)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: index not found; build it with python -m pipeline.ingest")
    return path
