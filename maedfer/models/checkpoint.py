"""maedfer's own model files: weights plus everything needed to rebuild the model.

A model file is a ``torch.save`` of plain types (loadable with ``weights_only=True``)::

    {"format": "maedfer.model", "version": 1, "arch": factory name, "arch_kwargs": {...},
     "state_dict": {...}, "class_names": [...] | None, "extra": {...}}
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maedfer.io_utils import save_torch_atomic
from maedfer.models.registry import create_model

FORMAT = "maedfer.model"
VERSION = 1


class ModelFileError(ValueError):
    """A file that is not a maedfer model file."""


def save_model(
    path: str | Path, model: nn.Module, class_names: list[str] | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """Save ``model`` with its factory name, keyword arguments and class names; returns the path."""
    model = getattr(model, "module", model)  # unwrap DDP
    arch = getattr(model, "arch", None)
    if arch is None:
        raise ValueError("model was not built with maedfer.models.create_model; its architecture is unknown")
    kwargs = {k: v for k, v in getattr(model, "arch_kwargs", {}).items() if k != "init"}
    names = class_names if class_names is not None else getattr(model, "class_names", None)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "arch": arch,
        "arch_kwargs": kwargs,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "class_names": list(names) if names is not None else None,
        "extra": extra or {},
    }
    save_torch_atomic(payload, path)
    return Path(path)


def read_model_file(path: str | Path) -> dict[str, Any]:
    """The payload of a maedfer model file (FileNotFoundError or ValueError otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    try:
        # The authors' .pth files carry their argparse.Namespace under "args": allowed as data, nothing executed.
        with torch.serialization.safe_globals([argparse.Namespace]):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # other globals: not ours, and never unpickled here
        raise ModelFileError(f"{path}: not a maedfer model file ({str(exc).splitlines()[0][:160]})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(
            f"{path}: not a maedfer model file; convert an official checkpoint first with "
            "'maedfer convert OFFICIAL.pth OUT.pt'"
        )
    if payload.get("version", 0) > VERSION:
        raise ModelFileError(f"{path}: written by a newer maedfer (format version {payload['version']}); upgrade")
    return payload


def load_model(path: str | Path, **overrides: Any) -> nn.Module:
    """Rebuild a model from its file.

    Rebuild and load a model saved by :func:`save_model`. ``overrides`` change constructor
    arguments that do not affect weights (e.g. ``drop_path_rate``).
    """
    payload = read_model_file(path)
    model = create_model(payload["arch"], init=False, **{**payload["arch_kwargs"], **overrides})
    model.load_state_dict(payload["state_dict"], strict=True)
    model.class_names = payload.get("class_names")
    model.extra = payload.get("extra", {})
    return model
