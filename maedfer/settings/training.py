"""Typed settings of the two training stages: the paper's recipe as defaults (ARCHITECTURE.md).

``PretrainConfig`` is the ``pretrain.defaults`` section of a params file (plus a run's overrides),
``FinetuneConfig`` the ``finetune.defaults`` section (plus a dataset's ``datasets.<name>.finetune``
and an experiment's overrides). Both are recorded in every checkpoint: a killed run resumes only
with the same settings.

Batch: ``batch_size`` is the micro-batch of one process. ``total_batch`` (the clips per update, on
which the lr is scaled) fixes the recipe whatever the GPU count: the engine derives the micro-batches
per update as ``total_batch / (batch_size x processes)`` (an error when it does not divide). Left
``None``, the total batch is ``batch_size x accum_steps x processes`` (the behaviour before it
existed). Precision: ``None`` is bf16 autocast on CUDA and fp32 elsewhere; ``"fp16"`` is float16
autocast with a gradient scaler (the authors' runs), ``"bf16"`` / ``"fp32"`` force the others.
Data path (``data_path``): "auto" decodes and augments on the GPU when training on CUDA
(:mod:`maedfer.data.gpu`; the loader workers only read JPEG bytes and draw the parameters) and in the
workers otherwise; "cpu" / "device" force one. ``cache_mb``: a small dataset read by a fast model (the
demo on a CPU) keeps its clips' bytes in memory after the first epoch (:mod:`maedfer.data.shards.cache`);
the same bytes, the same floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from maedfer.constants import DEFAULT_STRIDE

PRECISIONS = ("bf16", "fp16", "fp32")  # the `precision` values (None: bf16 on CUDA, fp32 on CPU)


@dataclass
class PretrainConfig:
    """Pre-training settings (``pretrain.defaults`` of a params file)."""

    arch: str = "pretrain_lgi_former_base_patch16_160"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)  # region_size, mask_ratio, appearance_weight, ...
    epochs: int = 50
    warmup_epochs: int = 5
    batch_size: int = 32  # per process and micro-batch
    accum_steps: int = 1  # micro-batches per update: effective batch = batch_size x accum_steps x world size
    total_batch: int | None = None  # clips per update; set: accum_steps = total_batch / (batch_size x world size)
    base_lr: float = 3e-4
    base_min_lr: float = 1e-5
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    clip_grad: float | None = None
    stride: int = DEFAULT_STRIDE
    num_workers: int = 8
    seed: int = 0
    save_every_steps: int = 0  # 0: only at epoch ends
    preview_every_epochs: int = 10  # reconstruction preview PNG (paper Fig. 4); 0: never
    keep_last: int = 2
    max_nonfinite: int = 20
    max_steps_per_epoch: int | None = None  # cap (tests, smoke runs)
    stop_after_steps: int | None = None  # end the run after this many updates (e.g. to test resume)
    compile: bool | str = "auto"  # "auto": compiled with CUDA graphs on one GPU, eager on CPU (maedfer.train.compile)
    schedule_epochs: int | None = None  # the cosine schedule's length (None: epochs); the run stops after `epochs`
    precision: str | None = None  # None (bf16 on CUDA, fp32 on CPU), "bf16", "fp16" (autocast + GradScaler), "fp32"
    decay_region_tokens: bool = False  # weight decay on the encoder's region tokens too (the authors' pre-training)
    data_path: str = "auto"  # "auto" (device on CUDA, else cpu), "cpu" (workers decode + augment), "device" (GPU does)
    cache_mb: int = 0  # MiB of clips' JPEG bytes kept in memory per reading process across epochs (0: none)


@dataclass
class FinetuneConfig:
    """Fine-tuning settings (``finetune.defaults`` of a params file)."""

    arch: str = "lgi_former_base_patch16_160"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)  # region_size, pool, use_inter, ...
    init: str | None = None  # maedfer pre-training model.pt, an official checkpoint, or None (from scratch)
    epochs: int = 100
    warmup_epochs: int = 5
    batch_size: int = 32  # per process and micro-batch (Mixup/CutMix draw once per micro-batch)
    accum_steps: int = 1  # micro-batches per update: total batch = batch_size x accum_steps x world size
    total_batch: int | None = None  # clips per update; set: accum_steps = total_batch / (batch_size x world size)
    base_lr: float = 1e-3
    base_min_lr: float = 1e-6
    weight_decay: float = 0.05
    layer_decay: float = 0.75
    drop_path: float = 0.1
    head_init_scale: float = 0.001  # the new head's init: trunc_normal(std 0.02) x this (the authors' --init_scale)
    mixup: float = 0.8
    cutmix: float = 1.0
    label_smoothing: float = 0.1
    stride: int = DEFAULT_STRIDE
    num_workers: int = 8
    seed: int = 0
    max_steps_per_epoch: int | None = None
    test_best: bool = False  # also run the 2-clip test with the best-validation-UAR epoch's weights (*_best files)
    eval_every: int = 1  # validate every N epochs and after the last (1: every epoch, the authors'); test_best picks
    # among the validated epochs
    # Training augmentation (the authors' by default). A tiny model on a small set (the demo) may need less:
    auto_augment: str | None = "rand-m7-n4-mstd0.5-inc1"  # clip-consistent RandAugment; None: off
    crop_scale: tuple[float, float] = (0.08, 1.0)  # random resized crop area range
    reprob: float = 0.25  # random erasing probability (same box in every frame)
    data_path: str = "auto"  # "auto" (device on CUDA, else cpu), "cpu" (workers decode + augment), "device" (GPU does)
    precision: str | None = None  # None (bf16 on CUDA, fp32 on CPU), "bf16", "fp16" (autocast + GradScaler), "fp32"
    compile: bool | str = "auto"  # "auto": compiled with CUDA graphs on one GPU, eager on CPU (maedfer.train.compile)
    cache_mb: int = 0  # MiB of clips' JPEG bytes kept in memory per reading process across epochs (0: none)


# Fine-tuning settings that are constructor arguments of the classifier (setting -> argument): the loop builds
# the model with them, and the checks build it the same way.
CLASSIFIER_ARGS = {"drop_path": "drop_path_rate", "head_init_scale": "head_init_scale"}


def classifier_build_kwargs(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The classifier's constructor arguments among a run's settings (none for a pre-training's)."""
    return {arg: settings[key] for key, arg in CLASSIFIER_ARGS.items() if key in settings}
