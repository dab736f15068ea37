"""Records MLflow accepts: its size limits, clean names, flattened params and batched param logging.

The limits repeat ``mlflow.utils.validation`` so that this module does not import mlflow.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator, Mapping
from typing import Any

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000

_TRUNCATED = "...[truncated]"


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists and other values stay leaves)."""
    flat: dict[str, Any] = {}
    for k, v in params.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            flat.update(flatten_params(v, prefix=f"{key}."))
        else:
            flat[key] = v
    return flat


def clean_key(key: str) -> str:
    """A metric/param/tag name MLflow accepts: allowed characters only, no path tricks, <= 250 chars."""
    key = re.sub(r"[^/\w.\- :]", "_", str(key)).strip("/")[:MAX_KEY_LENGTH] or "_"
    if not _unique_path(key):
        key = key.replace("/", "_")
    if not _unique_path(key):
        key = "_" + key[: MAX_KEY_LENGTH - 1]
    return key


def _unique_path(key: str) -> bool:
    """MLflow refuses names that resolve to other names as paths (``a//b``, ``./a``, ``../a``)."""
    norm = posixpath.normpath(key)
    return norm == key and norm != "." and not norm.startswith(("..", "/"))


def clip_text(value: Any, limit: int) -> str:
    """``str(value)``, cut to ``limit`` characters with a ``...[truncated]`` end when longer."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - len(_TRUNCATED)] + _TRUNCATED


def clean_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tags under cleaned names with values cut to MLflow's tag length."""
    return {clean_key(k): clip_text(v, MAX_TAG_VALUE_LENGTH) for k, v in tags.items()}


def chunks(items: list, size: int) -> Iterator[list]:
    """Consecutive slices of ``items`` of at most ``size`` elements (MLflow's batch limits)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def log_new_params(client: Any, run_id: str, flat: Mapping[str, Any]) -> list[str]:
    """Log params not yet on the run; returns the keys whose logged value differs (kept as logged)."""
    from mlflow.entities import Param

    existing = client.get_run(run_id).data.params
    new, changed = [], []
    for k, v in flat.items():
        key, value = clean_key(k), clip_text(v, MAX_PARAM_VALUE_LENGTH)
        if key in existing:
            if existing[key] != value:
                changed.append(key)
            continue
        existing[key] = value
        new.append(Param(key, value))
    for chunk in chunks(new, MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=chunk)
    return changed
