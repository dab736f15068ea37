"""Score any checkpoint (ours or the authors', converted on the fly) on a dataset fold with the 2-clip test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from maedfer.constants import DEFAULT_STRIDE
from maedfer.data.datasets import FinetuneDataset, make_loader
from maedfer.data.shards import index_metadata, read_index
from maedfer.models import load_model
from maedfer.models.checkpoint import ModelFileError
from maedfer.train.distributed import init_distributed
from maedfer.train.outputs import predict, write_outputs


def load_classifier(path: str | Path, class_names: list[str] | None = None, **official_kwargs: Any) -> torch.nn.Module:
    """Load a maedfer model file, or an official fine-tuned checkpoint (converted in memory)."""
    try:
        model = load_model(path)
    except ModelFileError:
        from maedfer.models.official import load_official_checkpoint

        model = load_official_checkpoint(path, class_names=class_names, **official_kwargs)
    if not hasattr(model, "head"):
        raise ValueError(f"{path}: is a pre-training model; evaluate a fine-tuned (classification) model")
    return model


def evaluate(checkpoint: str | Path, index_path: str | Path, fold: int | None, out_dir: str | Path,
             stride: int = DEFAULT_STRIDE, batch_size: int = 16, num_workers: int = 4,
             **official_kwargs: Any) -> dict[str, Any]:
    """Run the 2-clip test of a classifier on a fold's test clips (every clip when ``fold`` is None).

    Writes ``predictions.csv``, ``metrics.json`` and ``confusion.png`` into ``out_dir`` (main rank)
    and returns the metrics (``{}`` on the other ranks).
    """
    dist = init_distributed()
    class_names = json.loads(index_metadata(read_index(index_path)).get("class_names", "null") or "null")
    model = load_classifier(checkpoint, class_names, **official_kwargs).to(dist.device)
    names = getattr(model, "class_names", None) or class_names
    if model.num_classes != len(names):
        raise ValueError(f"{checkpoint}: {model.num_classes} classes, but {index_path} has {len(names)}")
    pe = model.encoder.patch_embed
    test_set = FinetuneDataset(index_path, fold, "test" if fold is not None else None, "test", stride=stride,
                               clip_len=pe.num_frames, size=pe.img_size)
    loader = make_loader(test_set, batch_size, shuffle=False, num_workers=num_workers,
                         num_replicas=dist.world_size, rank=dist.rank)
    result = predict(model, loader, dist.device)
    return write_outputs(Path(out_dir), "", test_set, list(names), result) if dist.is_main else {}
