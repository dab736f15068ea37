"""One training engine for both stages: set-up, optimiser and schedule, updates, epochs, checkpoints.

A stage (:mod:`maedfer.train.pretrain_loop`, :mod:`maedfer.train.finetune_loop`) hands the engine
its model, its training loader, a step function (one micro-batch -> loss terms) and
:class:`Hooks`; the engine does the rest, the same way for both:

- set-up: the warm-up check (before anything else), torchrun's process group, seeds
  ``seed + rank``, the model on its device, wrapped in DDP (``find_unused_parameters`` when part
  of the model never reaches the loss) and optionally compiled;
- batches, lr and schedule from :func:`maedfer.train.recipe.plan_updates`: the micro-batches per
  update (``accum_steps``, or derived from ``total_batch`` for this process count), AdamW over the
  model's parameter groups at lr x total batch / 256, a per-update warm-up + cosine schedule over
  ``schedule_epochs`` (default: the run's epochs);
- precision (:mod:`maedfer.train.policy`): ``engine.autocast()`` for the forward passes; under
  fp16 a dynamic gradient scaler scales the backward passes, unscales before clipping, skips the
  steps whose gradients overflow (counted) and is checkpointed with the rest;
- one update: ``schedule.step()``, then ``accum_steps`` micro-batches, each ``loss / accum_steps``
  backward (DDP all-reduces on the last micro-batch only: ``no_sync`` on the others); the loss of
  the update is the mean of the micro-batch losses; then the non-finite policy of
  :mod:`maedfer.train.policy`, gradient clipping and ``optimizer.step()``;
- the epoch runner: sampler ``set_epoch``, a tqdm bar, per-update tracking (``log_steps``),
  checkpoints every ``save_every_steps`` updates and at each epoch end, ``history.json`` (one
  record per epoch, from ``Hooks.epoch_end``), ``stop_after_steps``, and ``finished.json`` after
  ``Hooks.train_end`` wrote the final outputs;
- resume-or-restart (:func:`maedfer.train.checkpoint.resume_or_restart`): a killed run with the
  same settings continues from its last checkpoint, mid-epoch included (the epoch's sampler order
  is replayed and the consumed micro-batches are skipped), and ends bit-identical. A mid-epoch
  checkpoint also holds the epoch's losses so far (every rank's) and its lr, so the epoch's record
  (mean loss) is the uninterrupted run's; its throughput counts only the updates this process ran
  and their time (:meth:`EpochStats.clips_per_s`). The MLflow run id is checkpointed too: a resumed
  run continues the same run (:meth:`maedfer.tracking.Tracker.continue_run`, tags
  ``maedfer.resumes`` and ``maedfer.resumed_at_step``); a checkpoint's run that is not continued
  (settings changed, ``--no-resume``) and still shows RUNNING is marked FAILED (its process is dead:
  the stage holds its folder's lock);
- preemption (:mod:`maedfer.train.preemption`): SIGTERM or SIGUSR1 during the update loop ->
  every rank checkpoints at the next update boundary and exits with status 143 (``Preempted``).

Fine-tuning used to skip backward on a non-finite loss and carry on silently; under the one policy
it runs backward (the gradients are dropped, so the weights are the same), counts and warns, and
stops with :class:`~maedfer.train.policy.NonFiniteLossError` after ``max_nonfinite`` (default 20)
non-finite updates in a row, like pre-training.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from maedfer.io_utils import write_json_atomic
from maedfer.train.checkpoint import (
    find_resume_checkpoint,
    load_training_state,
    mark_finished,
    resume_or_restart,
    save_training_state,
    saved_extra,
)
from maedfer.train.compile import StaticBatch, compile_mode, compile_model
from maedfer.train.distributed import gather_objects, init_distributed, seed_everything
from maedfer.train.optim import build_optimizer
from maedfer.train.policy import NonFiniteGuard, autocast, check_warmup, grad_scaler, resolve_precision
from maedfer.train.preemption import PREEMPTED_EXIT_CODE, Preempted, PreemptionSignals
from maedfer.train.recipe import Recipe, UpdatePlan, accumulation, check_schedule, plan_updates

__all__ = ["Engine", "EpochStats", "Hooks", "Recipe", "StepFn", "UpdatePlan"]

log = logging.getLogger(__name__)

StepFn = Callable[[Any, int], dict[str, torch.Tensor]]  # (micro-batch, micro index) -> {"loss": scalar, ...}


@dataclass
class EpochStats:
    """One epoch's training, as ``Hooks.epoch_end`` receives it."""

    epoch: int  # 0-based index of the epoch just trained
    started: float  # time.perf_counter() when this process started (or resumed) the epoch
    losses: list[float] = field(default_factory=list)  # one per update of the epoch, before a resume included
    lr: float = math.nan  # the (unscaled) lr of its last update
    resumed_updates: int = 0  # updates run before a mid-epoch resume (their losses came from the checkpoint)

    def seconds(self) -> float:
        """Return the seconds since this process started (or resumed) the epoch."""
        return time.perf_counter() - self.started

    def updates_run(self) -> int:
        """Return the updates of the epoch that this process ran (those after a resume)."""
        return len(self.losses) - self.resumed_updates

    def mean_loss(self) -> float:
        """Return the mean loss of the epoch's updates, those before a resume included (NaN if none)."""
        return float(sum(self.losses) / len(self.losses)) if self.losses else math.nan

    def clips_per_s(self, total_batch: int) -> float:
        """Return the clips per second of the updates this process ran (NaN if none).

        The time and clips of a killed process before a resume do not count.
        """
        runs = self.updates_run()
        return total_batch * runs / max(self.seconds(), 1e-9) if runs else math.nan


@dataclass
class Hooks:
    """A stage's part of the epoch runner; only ``epoch_end`` is required."""

    epoch_end: Callable[[EpochStats], dict[str, Any]]  # validation, best epoch -> the history.json record
    epoch_start: Callable[[int], None] | None = None  # called with the 0-based epoch, after the sampler's set_epoch
    after_checkpoint: Callable[[int], None] | None = None  # epochs done, after the checkpoint (previews)
    state: Callable[[], dict[str, Any]] | None = None  # checkpoint ``extra`` entries besides "history"
    train_end: Callable[[], dict[str, Any]] | None = None  # final outputs (model file, 2-clip test) -> summary


class Engine:
    """Trains one model with a :class:`Recipe`; see the module docstring for what it does.

    Use: ``engine = Engine(...)`` (checks, process group, seeds), ``engine.attach(model)``,
    build the loaders, ``engine.configure(len(loader))`` (optimiser, schedule, resume), then
    ``engine.fit(loader, step, hooks)``. A step function reads ``engine.global_step`` (the index
    of the update being computed) to derive its randomness, and runs its forward pass through
    ``engine.forward`` inside ``engine.autocast()``. ``engine.accum_steps`` and
    ``engine.precision`` are known from construction on; ``engine.config`` is the run's settings
    with ``precision`` resolved (what checkpoints and the model file record).
    """

    def __init__(self, recipe: Recipe, out_dir: str | Path, config: dict[str, Any], *, desc: str,
                 tracker: Any | None = None, resume: bool = True, log_steps: bool = False) -> None:
        """Check the warm-up and schedule, join torchrun's process group (if any), seed this process.

        Also resolves the precision and the micro-batches per update (a ``total_batch`` that this
        process count does not divide is a ValueError naming the key).
        """
        check_warmup(recipe.warmup_epochs, recipe.epochs)
        check_schedule(recipe.epochs, recipe.schedule_epochs)
        self.recipe, self.desc = recipe, desc
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.tracker, self.resume, self.log_steps = tracker, resume, log_steps
        self.dist = init_distributed()
        seed_everything(recipe.seed, self.dist.rank)
        self.device = self.dist.device
        self.accum_steps = accumulation(recipe.total_batch, recipe.batch_size, recipe.accum_steps,
                                        self.dist.world_size)
        self.precision = resolve_precision(recipe.precision, self.device)
        self.config = {**config, "precision": self.precision} if "precision" in config else config
        self.scaler = grad_scaler(self.precision, self.device)
        self.guard = NonFiniteGuard(recipe.max_nonfinite)
        self.epoch = self.start_step = self.global_step = 0
        self.history: list[dict[str, Any]] = []  # one record per finished epoch -> history.json
        self.losses: list[float] = []  # one per update this process ran
        self.hooks: Hooks | None = None
        self.stats: EpochStats | None = None  # the epoch being trained
        self.resumes = 0  # how often this run was resumed from a checkpoint
        self._resumed: tuple[list[float], float] = ([], math.nan)  # the resumed epoch's losses so far, its lr

    def attach(self, model: nn.Module, *, find_unused_parameters: bool = False) -> nn.Module:
        """Move ``model`` to this process's device, DDP-wrap it under torchrun, compile it if asked."""
        self.model = model.to(self.device)
        self.train_model: nn.Module = self.model
        if self.dist.distributed:
            self.train_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=find_unused_parameters)
        mode = compile_mode(self.recipe.compile, self.device, self.dist.distributed)
        self.forward = compile_model(self.train_model, mode)
        # evaluation: eager, or the same compiled graphs with its batches padded to one size (CUDA graphs)
        self.eval_forward = StaticBatch(compile_model(self.model, mode)) if mode == "reduce-overhead" else self.model
        return self.model

    def autocast(self) -> torch.autocast:
        """The autocast context of this run's forward passes (its resolved precision)."""
        return autocast(self.device, self.precision)

    def configure(self, batches_per_epoch: int, *, num_samples: int | None = None,
                  decay_names: Collection[str] = ()) -> dict[str, Any]:
        """Build AdamW and the schedule, then resume or restart; returns the resumed checkpoint's ``extra``.

        ``num_samples`` (the training set's size) caps the updates per epoch at ``num_samples //
        total_batch``; ``decay_names`` are ``no_weight_decay()`` names decayed anyway
        (:func:`maedfer.train.optim.param_groups`).
        """
        r = self.recipe
        self.plan = plan_updates(r, self.dist.world_size, batches_per_epoch, num_samples)
        self.steps_per_epoch, self.total_batch, self.lr = self.plan.steps_per_epoch, self.plan.total_batch, self.plan.lr
        self.optimizer = build_optimizer(self.model, self.lr, r.weight_decay, betas=r.betas, layer_decay=r.layer_decay,
                                         decay_names=decay_names)
        self.schedule = self.plan.schedule(self.optimizer)
        tracking = bool(getattr(self.tracker, "active", False))
        found = find_resume_checkpoint(self.ckpt_dir) if tracking else None  # the MLflow run of the folder's run
        old_run = saved_extra(found).get("mlflow_run_id") if found is not None else None
        extra: dict[str, Any] = {}
        if self.resume and (path := resume_or_restart(self.ckpt_dir, self.config)) is not None:
            extra = self._restore(path)
            if old_run and self.tracker.continue_run(old_run):
                self.tracker.set_tags({"maedfer.resumes": self.resumes, "maedfer.resumed_at_step": self.global_step})
        elif old_run:  # not continued (settings changed, --no-resume): a RUNNING run there is dead
            self.tracker.fail_if_running(old_run)
        if self.tracker is not None:  # what the settings meant on this machine (MLflow params "resolved.*")
            self.tracker.log_params({"resolved": {
                "precision": self.precision, "processes": self.dist.world_size, "accum_steps": self.accum_steps,
                "total_batch": self.total_batch, "steps_per_epoch": self.steps_per_epoch, "lr": self.lr}})
        return extra

    def _restore(self, path: Path) -> dict[str, Any]:
        """Load the checkpoint ``path`` into the model, optimiser, schedule, scaler and RNG -> its ``extra``."""
        state = load_training_state(path, model=self.model, optimizer=self.optimizer, scheduler=self.schedule,
                                    scaler=self.scaler, map_location=self.device)
        self.epoch, self.start_step, self.global_step = state.epoch, state.step_in_epoch, state.global_step
        self.history = list(state.extra.get("history", []))
        self.resumes = int(state.extra.get("resumes", 0)) + 1
        per_rank = state.extra.get("epoch_losses") or []  # one list per rank of the saving run
        losses = [float(v) for v in per_rank[self.dist.rank % len(per_rank)]] if per_rank else []
        if self.start_step and len(losses) != self.start_step:
            log.warning("%s holds no losses of epoch %d's first %d updates (an older checkpoint): the epoch's "
                        "mean loss covers the updates after the resume only", path, self.epoch + 1, self.start_step)
            losses = []
        self._resumed = (losses, float(state.extra.get("epoch_lr", math.nan)))
        log.info("resumed from %s (epoch %d, step %d)", path, self.epoch, self.start_step)
        return dict(state.extra)

    def update(self, batches: Iterator[Any], step: StepFn) -> tuple[float, float, dict[str, torch.Tensor]]:
        """Run one optimiser update over ``accum_steps`` micro-batches -> (loss, lr, last micro-batch's terms)."""
        r, accum = self.recipe, self.accum_steps
        lr = self.schedule.step()
        losses = []
        for micro in range(accum):
            batch = next(batches)
            # DDP: all-reduce the gradients once per update, on the last micro-batch only
            last = micro == accum - 1
            sync = self.train_model.no_sync() if self.dist.distributed and not last else contextlib.nullcontext()
            with sync:
                out = step(batch, micro)
                losses.append(out["loss"].detach())
                part = out["loss"] / accum
                (self.scaler.scale(part) if self.scaler is not None else part).backward()
        loss = torch.stack(losses).mean()
        if self.guard.check(loss, self.global_step):
            if self.scaler is None:
                if r.clip_grad:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), r.clip_grad)
                self.optimizer.step()
            else:
                self._scaled_step()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        value = float(loss)
        self.losses.append(value)
        return value, lr, out

    def _scaled_step(self) -> None:
        """fp16: unscale (before clipping), step unless the gradients overflowed, update the scale."""
        if self.recipe.clip_grad:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.clip_grad)
        scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scaler.get_scale() < scale:  # the scaler found inf/NaN gradients: no step, scale lowered
            self.guard.overflow(self.global_step)
        else:
            self.guard.applied()

    def save(self, epoch: int, step_in_epoch: int) -> None:
        """Checkpoint the position to resume from (every rank: a collective under DDP)."""
        extra: dict[str, Any] = {"history": self.history, "resumes": self.resumes,
                                 **(self.hooks.state() if self.hooks and self.hooks.state else {})}
        if step_in_epoch and self.stats is not None:  # mid-epoch: the epoch's record needs its losses so far
            extra["epoch_losses"] = gather_objects(list(self.stats.losses))  # every rank's (a collective)
            extra["epoch_lr"] = float(self.stats.lr)
        if run_id := getattr(self.tracker, "known_run_id", None):
            extra["mlflow_run_id"] = run_id
        save_training_state(self.ckpt_dir, model=self.model, optimizer=self.optimizer, scheduler=self.schedule,
                            scaler=self.scaler, epoch=epoch, step_in_epoch=step_in_epoch, global_step=self.global_step,
                            config=self.config, keep_last=self.recipe.keep_last, extra=extra)

    def _track(self, stats: EpochStats, value: float, lr: float, out: dict[str, torch.Tensor]) -> None:
        clips_s = stats.clips_per_s(self.total_batch)
        metrics = {"train/loss": value, "train/lr": lr, "train/clips_per_s": clips_s,
                   **{f"train/{k}": float(v.detach()) for k, v in out.items() if k != "loss"}}
        if self.device.type == "cuda":
            metrics["gpu/max_memory_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        self.tracker.log_metrics(metrics, step=self.global_step)

    def fit(self, loader: torch.utils.data.DataLoader, step: StepFn, hooks: Hooks) -> dict[str, Any] | None:
        """Train to the last epoch and return ``hooks.train_end()``; ``None`` when stopped by ``stop_after_steps``.

        Raises :class:`~maedfer.train.preemption.Preempted` (exit status 143) after checkpointing when a
        rank got SIGTERM or SIGUSR1 during the update loop.
        """
        r, self.hooks = self.recipe, hooks
        with PreemptionSignals() as signals:
            while self.epoch < r.epochs:
                if self._epoch(loader, step, hooks, signals) is None:
                    return None
                self.history.append(hooks.epoch_end(self.stats))
                self.epoch, self.start_step = self.epoch + 1, 0
                self.save(self.epoch, 0)
                if self.dist.is_main:
                    write_json_atomic(self.out_dir / "history.json", self.history)
                if signals.requested():
                    raise self._preempted(signals)
                if hooks.after_checkpoint is not None:
                    hooks.after_checkpoint(self.epoch)
        summary = hooks.train_end() if hooks.train_end is not None else {}
        mark_finished(self.ckpt_dir)  # a later run into this folder starts afresh instead of resuming this one
        return summary

    def _epoch(self, loader: torch.utils.data.DataLoader, step: StepFn, hooks: Hooks,
               signals: PreemptionSignals) -> EpochStats | None:
        """Run the updates of ``self.epoch`` from ``self.start_step`` -> its stats; None at ``stop_after_steps``.

        A stop or a preemption on the epoch's last update saves the position (epoch, steps_per_epoch):
        the next run starts with the epoch's end (``Hooks.epoch_end``, the epoch's checkpoint).
        """
        r = self.recipe
        loader.sampler.set_epoch(self.epoch)
        if hooks.epoch_start is not None:
            hooks.epoch_start(self.epoch)
        self.model.train()
        batches = iter(loader)
        if self.start_step:  # same sampler order: skip the micro-batches already consumed
            batches = itertools.islice(batches, self.start_step * self.accum_steps, None)
        (losses, lr), self._resumed = self._resumed, ([], math.nan)
        stats = self.stats = EpochStats(self.epoch, time.perf_counter(), list(losses), lr, len(losses))
        bar = tqdm(range(self.start_step, self.steps_per_epoch), desc=f"{self.desc} epoch {self.epoch}",
                   disable=not self.dist.is_main, leave=False)
        for i in bar:
            value, stats.lr, out = self.update(batches, step)
            stats.losses.append(value)
            bar.set_postfix(loss=f"{value:.4f}")
            if self.log_steps and self.tracker is not None:
                self._track(stats, value, stats.lr, out)
            saved = r.save_every_steps and self.global_step % r.save_every_steps == 0 and i + 1 < self.steps_per_epoch
            if saved:
                self.save(self.epoch, i + 1)
            stop = bool(r.stop_after_steps and self.global_step >= r.stop_after_steps)
            preempted = signals.requested()
            if (stop or preempted) and not saved:
                self.save(self.epoch, i + 1)
            if stop:
                return None
            if preempted:
                raise self._preempted(signals)
        return stats

    def _preempted(self, signals: PreemptionSignals) -> Preempted:
        """The exception that ends a preempted run (its message says what was saved and what to do)."""
        what = signals.received.name if signals.received is not None else "another rank's SIGTERM/SIGUSR1"
        message = (f"{what}: checkpointed at update {self.global_step} (epoch {self.epoch + 1}) in {self.ckpt_dir}; "
                   f"exiting with status {PREEMPTED_EXIT_CODE}; the same command continues the run")
        log.warning("%s", message)
        return Preempted(message)
