"""The engine's recipe and what it makes of it on a given number of processes: batches, lr, schedule length.

:class:`Recipe` holds the settings both stages share. :func:`plan_updates` turns a recipe, the
process count and the training loader's length into an :class:`UpdatePlan`: micro-batches per
update, the total batch (clips per update), updates per epoch, the lr scaled on the total batch and
the schedule's length. It is a pure function (the engine calls it; tests call it for any GPU count):

- total batch: ``recipe.total_batch`` when set, and the micro-batches per update are then derived,
  ``total_batch / (batch_size x processes)``, so that one GPU with accumulation and several GPUs
  run the same recipe; else ``batch_size x accum_steps x processes`` (as before the setting);
- updates per epoch: the loader's micro-batches // accumulation, capped, when the number of
  training samples is known, at ``samples // total_batch`` (the authors' count: it does not depend
  on how the padded distributed sampler splits the data), and by ``max_steps_per_epoch``;
- lr and minimum lr: ``base x total batch / 256``; the warm-up is ``warmup_epochs`` epochs of
  updates and the cosine runs over ``schedule_epochs`` (default ``epochs``) epochs, so a run may stop
  part-way down a longer schedule (the authors' released pre-training is epoch 50 of 100).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

from maedfer.train.optim import scaled_lr
from maedfer.train.schedule import WarmupCosineSchedule


@dataclass(frozen=True)
class Recipe:
    """The engine's settings: optimiser, schedule, batches, precision, non-finite limit and checkpointing."""

    epochs: int
    warmup_epochs: int
    batch_size: int  # per process and micro-batch
    base_lr: float
    base_min_lr: float
    weight_decay: float
    betas: tuple[float, float] = (0.9, 0.999)
    layer_decay: float | None = None
    accum_steps: int = 1
    total_batch: int | None = None  # clips per update; set: the accumulation is derived from it
    schedule_epochs: int | None = None  # cosine length in epochs (None: epochs)
    precision: str | None = None  # see maedfer.train.policy.resolve_precision
    clip_grad: float | None = None
    max_nonfinite: int = 20
    max_steps_per_epoch: int | None = None
    save_every_steps: int = 0
    stop_after_steps: int | None = None
    keep_last: int | None = 2
    compile: bool | str = "auto"  # see maedfer.train.compile.compile_mode
    seed: int = 0

    @classmethod
    def of(cls, cfg: Any, **overrides: Any) -> Recipe:
        """Build the recipe from a stage's settings: the fields both share, then ``overrides``."""
        shared = {f.name: getattr(cfg, f.name) for f in fields(cls) if hasattr(cfg, f.name)}
        return cls(**{**shared, **overrides})


@dataclass(frozen=True)
class UpdatePlan:
    """What a recipe means on ``world_size`` processes (see the module docstring)."""

    world_size: int
    batch_size: int  # per process and micro-batch
    accum_steps: int  # micro-batches per update and process
    total_batch: int  # clips per update, all processes
    steps_per_epoch: int  # updates per epoch
    lr: float  # peak lr (base_lr x total_batch / 256)
    min_lr: float
    total_steps: int  # the schedule's length in updates (schedule_epochs x steps_per_epoch)
    warmup_steps: int

    def schedule(self, optimizer: torch.optim.Optimizer) -> WarmupCosineSchedule:
        """The per-update warm-up + cosine schedule of this plan over ``optimizer``'s groups."""
        return WarmupCosineSchedule(optimizer, self.lr, self.min_lr, self.total_steps, self.warmup_steps)


def accumulation(total_batch: int | None, batch_size: int, accum_steps: int, world_size: int) -> int:
    """Micro-batches per update: ``accum_steps``, or derived from ``total_batch`` (ValueError naming the key)."""
    if total_batch is None:
        return accum_steps
    per_round = batch_size * world_size
    if total_batch <= 0 or total_batch % per_round:
        raise ValueError(f"total_batch {total_batch} is not a multiple of batch_size {batch_size} x {world_size} "
                         f"process(es) = {per_round}; change total_batch, batch_size or the GPU count (resources.gpus)")
    derived = total_batch // per_round
    if accum_steps not in (1, derived):
        raise ValueError(f"accum_steps {accum_steps} contradicts total_batch {total_batch} (batch_size {batch_size} "
                         f"x {world_size} process(es) needs {derived}); set total_batch or accum_steps, not both")
    return derived


def check_schedule(epochs: int, schedule_epochs: int | None) -> None:
    """Refuse a schedule shorter than the run (one-line ValueError naming the key)."""
    if schedule_epochs is not None and schedule_epochs < epochs:
        raise ValueError(f"schedule_epochs ({schedule_epochs}) is less than epochs ({epochs}); "
                         "raise schedule_epochs or leave it unset (= epochs)")


def plan_updates(recipe: Recipe, world_size: int, batches_per_epoch: int, num_samples: int | None = None) -> UpdatePlan:
    """The plan of ``recipe`` on ``world_size`` processes whose loader gives ``batches_per_epoch`` micro-batches.

    ``num_samples`` (the training set's size) caps the updates per epoch at ``num_samples //
    total_batch``; a plan without a single update per epoch is a ValueError naming the settings.
    """
    check_schedule(recipe.epochs, recipe.schedule_epochs)
    accum = accumulation(recipe.total_batch, recipe.batch_size, recipe.accum_steps, world_size)
    total = recipe.batch_size * accum * world_size
    steps = batches_per_epoch // accum
    if num_samples is not None:
        steps = min(steps, num_samples // total)
    if recipe.max_steps_per_epoch:
        steps = min(steps, recipe.max_steps_per_epoch)
    if steps <= 0:
        raise ValueError(f"{batches_per_epoch} micro-batches of {recipe.batch_size} per process make no update of "
                         f"{total} clips ({accum} micro-batch(es) x {world_size} process(es)); lower batch_size, "
                         "accum_steps or total_batch")
    return UpdatePlan(world_size=world_size, batch_size=recipe.batch_size, accum_steps=accum, total_batch=total,
                      steps_per_epoch=steps, lr=scaled_lr(recipe.base_lr, total),
                      min_lr=scaled_lr(recipe.base_min_lr, total),
                      total_steps=(recipe.schedule_epochs or recipe.epochs) * steps,
                      warmup_steps=recipe.warmup_epochs * steps)
