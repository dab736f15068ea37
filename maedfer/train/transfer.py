"""Transfer learning: a pre-trained encoder (maedfer model file or the authors' checkpoint) into a classifier."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from maedfer.models.checkpoint import ModelFileError, read_model_file

log = logging.getLogger(__name__)


def load_pretrained_encoder(model: torch.nn.Module, path: str | Path) -> None:
    """Copy a pre-trained encoder (maedfer model file or the authors' checkpoint) into a classifier.

    The encoder's final norm is left out (the classifier has its own ``fc_norm``). A file without
    encoder weights, or whose encoder does not fit ``model``, is a one-line ValueError.
    """
    try:
        state = read_model_file(path)["state_dict"]
    except ModelFileError:
        from maedfer.models.official import load_official_checkpoint

        state = load_official_checkpoint(path).state_dict()
    encoder = {k[len("encoder."):]: v for k, v in state.items()
               if k.startswith("encoder.") and not k.startswith("encoder.norm.")}
    if not encoder:
        raise ValueError(f"{path}: holds no encoder weights (expected a pre-training model)")
    missing, unexpected = model.encoder.load_state_dict(encoder, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: encoder does not match {model.arch}: missing {missing[:4]}, unexpected "
                         f"{unexpected[:4]}; pass the same --arch and --arch-kwargs as the pre-training")
    log.info("initialised the encoder from %s (%d tensors)", path, len(encoder))
