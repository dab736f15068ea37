"""AdamW with the authors' parameter groups: no decay on biases/norms/tokens, layer-wise lr decay.

The model interface (see ``maedfer.models``): ``no_weight_decay() -> set[str]`` names parameters
exempt from weight decay; ``layer_id(name) -> int`` gives 0 for the patch embedding,
``i + 1`` for block ``i`` and ``depth + 1`` for the head; ``num_layers`` is the number of those
ids, ``depth + 2``. A parameter in layer ``l`` trains at ``lr * decay ** (num_layers - 1 - l)``:
with depth 16 and decay 0.75 the patch embedding gets ``0.75 ** 17`` and the head ``1.0``
(VideoMAE's ``decay ** (depth + 1 - l)``). Every group carries ``lr_scale``, which
:class:`maedfer.train.schedule.WarmupCosineSchedule` multiplies into the scheduled lr.
``decay_names`` takes names out of ``no_weight_decay()``: the authors' pre-training decays the
encoder's region tokens (their skip list holds the unprefixed name), which
``PretrainConfig.decay_region_tokens`` reproduces.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable

import torch
from torch import nn

from maedfer.train.distributed import unwrap_model

logger = logging.getLogger(__name__)


def scaled_lr(base_lr: float, total_batch: int) -> float:
    """Apply the linear scaling rule the authors use: ``base_lr * total_batch / 256``."""
    if total_batch <= 0:
        raise ValueError(f"total batch size must be positive, got {total_batch}")
    return base_lr * total_batch / 256


def layer_scales(num_layers: int, decay: float) -> list[float]:
    """Return the lr multiplier of each layer id ``0..num_layers-1``; the last id (the head) gets 1.0."""
    return [decay ** (num_layers - 1 - i) for i in range(num_layers)]


def exempt_from_decay(name: str, param: torch.Tensor, skip: Iterable[str]) -> bool:
    """Biases, norm weights and anything else of rank <= 1, plus names listed by ``no_weight_decay()``."""
    return param.ndim <= 1 or name.endswith(".bias") or name in set(skip)


def param_groups(
    model: nn.Module, weight_decay: float, layer_decay: float | None = None, num_layers: int | None = None,
    decay_names: Collection[str] = (),
) -> list[dict]:
    """Parameter groups keyed by (layer id, decay or not); frozen parameters are left out.

    Each group: ``params``, ``param_names``, ``weight_decay``, ``lr_scale``, ``layer_id``
    (``None`` without layer decay), ``group_name``. Names in ``decay_names`` are decayed even when
    ``no_weight_decay()`` lists them (rank <= 1 parameters and biases stay exempt).
    """
    model = unwrap_model(model)
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    skip -= set(decay_names)
    unknown = skip - {n for n, _ in model.named_parameters()}
    if unknown:
        logger.debug("no_weight_decay names that are not parameters (ignored): %s", sorted(unknown))
    scales: list[float] | None = None
    if layer_decay is not None:
        if not hasattr(model, "layer_id"):
            raise ValueError(f"{type(model).__name__} has no layer_id(); build the optimizer with layer_decay=None")
        n_layers = num_layers if num_layers is not None else getattr(model, "num_layers", None)
        if n_layers is None:
            raise ValueError(f"{type(model).__name__} has no num_layers; pass num_layers explicitly")
        scales = layer_scales(int(n_layers), layer_decay)

    groups: dict[str, dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = exempt_from_decay(name, param, skip)
        lid = None
        scale = 1.0
        if scales is not None:
            lid = int(model.layer_id(name))
            if not 0 <= lid < len(scales):
                raise ValueError(f"layer_id({name!r}) = {lid} is outside 0..{len(scales) - 1} (num_layers)")
            scale = scales[lid]
        key = (
            f"layer_{lid}_{'no_decay' if no_decay else 'decay'}"
            if lid is not None
            else ("no_decay" if no_decay else "decay")
        )
        if key not in groups:
            groups[key] = {
                "params": [],
                "param_names": [],
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr_scale": scale,
                "layer_id": lid,
                "group_name": key,
            }
        groups[key]["params"].append(param)
        groups[key]["param_names"].append(name)
    return list(groups.values())


def build_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
    layer_decay: float | None = None,
    eps: float = 1e-8,
    num_layers: int | None = None,
    fused: bool | None = None,
    decay_names: Collection[str] = (),
) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`; each group starts at ``lr * lr_scale`` (the schedule rewrites it).

    Authors' settings: fine-tuning betas (0.9, 0.999), wd 0.05, layer_decay 0.75; pre-training
    betas (0.9, 0.95), wd 0.05, no layer decay. ``fused`` is passed to AdamW (``None``: torch's default).
    """
    groups = param_groups(model, weight_decay, layer_decay=layer_decay, num_layers=num_layers,
                          decay_names=decay_names)
    if not groups:
        raise ValueError(f"{type(unwrap_model(model)).__name__} has no trainable parameters")
    for g in groups:
        g["lr"] = lr * g["lr_scale"]
    opt = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=fused)
    n_params = sum(p.numel() for g in groups for p in g["params"])
    logger.info(
        "AdamW: %d groups, %d trainable parameters, lr %.3g, wd %.3g, layer decay %s",
        len(groups),
        n_params,
        lr,
        weight_decay,
        layer_decay,
    )
    return opt
