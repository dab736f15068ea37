"""MAE-DFER pre-training loop: data -> masked reconstruction -> AdamW, with exact resume.

The paper's recipe is the default (ARCHITECTURE.md): AdamW (0.9, 0.95), weight decay 0.05,
lr 3e-4 x total batch / 256 with per-step warm-up then cosine to 1e-5 x batch / 256, mask
ratio 0.9, lambda 0.5, 16 frames at stride 4. bf16 autocast on CUDA, fp32 on CPU. A step whose
loss is not finite is skipped and counted; ``max_nonfinite`` in a row stops the run.

Determinism: the mask of update ``g`` (micro-batch ``k``) is drawn from a generator seeded by
(seed, g, k, rank), data randomness from (seed, epoch, clip), and a checkpoint holds the full
training state, so a run killed after any saved step and resumed ends with the same weights.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from maedfer.data.datasets import PretrainDataset, make_loader
from maedfer.io_utils import write_json_atomic
from maedfer.models import create_model, save_model
from maedfer.train.checkpoint import load_training_state, mark_finished, resume_or_restart, save_training_state
from maedfer.settings import PretrainConfig
from maedfer.train.distributed import init_distributed, seed_everything, unwrap_model
from maedfer.train.optim import build_optimizer, scaled_lr
from maedfer.train.schedule import WarmupCosineSchedule

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps with a non-finite loss."""


def _mask_generator(seed: int, step: int, micro: int, rank: int) -> torch.Generator:
    """A generator that depends only on (seed, update, micro-batch, rank): resumable masks."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 1_009 + micro) * 8_191 + rank)


def _autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on CUDA, plain fp32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def _save_preview(model: torch.nn.Module, dataset: PretrainDataset, epoch: int, seed: int, path: Path) -> Path:
    """Reconstruction figure of the dataset's first clip with a fixed mask (no training RNG is consumed)."""
    from maedfer.viz.reconstruction import save_reconstruction_figure

    device = next(model.parameters()).device
    video = dataset[0].unsqueeze(0).to(device)  # (1, 3, T, H, W)
    mask = model.sample_mask(1, generator=torch.Generator().manual_seed(seed), device=device)
    try:
        return save_reconstruction_figure(model, video, mask, path, title=f"epoch {epoch}")
    finally:
        model.train()


def pretrain(cfg: PretrainConfig, index_path: str | Path, out_dir: str | Path, resume: bool = True,
             tracker: Any | None = None) -> dict[str, Any]:
    """Run (or continue) pre-training; returns a summary. Writes ``out_dir/checkpoints/`` and,
    at the end, ``out_dir/model.pt`` (the whole pre-training model, maedfer format)."""
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    dist = init_distributed()
    seed_everything(cfg.seed, dist.rank)
    device = dist.device

    model = create_model(cfg.arch, **cfg.arch_kwargs).to(device)
    train_model: torch.nn.Module = model
    if dist.distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    forward = torch.compile(train_model) if cfg.compile else train_model

    pe = model.encoder.patch_embed
    dataset = PretrainDataset(index_path, stride=cfg.stride, clip_len=pe.num_frames, size=pe.img_size, seed=cfg.seed)
    loader = make_loader(dataset, cfg.batch_size, shuffle=True, seed=cfg.seed, num_workers=cfg.num_workers,
                         drop_last=True, num_replicas=dist.world_size, rank=dist.rank,
                         pin_memory=device.type == "cuda", persistent_workers=cfg.num_workers > 0)
    if cfg.warmup_epochs > cfg.epochs:
        raise ValueError(f"warmup_epochs ({cfg.warmup_epochs}) is more than epochs ({cfg.epochs}); "
                         "lower --warmup-epochs")
    micro_per_epoch = len(loader)
    if micro_per_epoch < cfg.accum_steps:
        raise ValueError(f"{index_path}: {len(dataset)} clips give {micro_per_epoch} batches of {cfg.batch_size} "
                         f"per process, fewer than accum_steps={cfg.accum_steps}; lower batch_size or accum_steps")
    steps_per_epoch = micro_per_epoch // cfg.accum_steps
    if cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    total_batch = cfg.batch_size * cfg.accum_steps * dist.world_size
    lr, min_lr = scaled_lr(cfg.base_lr, total_batch), scaled_lr(cfg.base_min_lr, total_batch)
    optimizer = build_optimizer(model, lr, cfg.weight_decay, betas=cfg.betas)
    schedule = WarmupCosineSchedule.from_epochs(optimizer, lr, min_lr, cfg.epochs, steps_per_epoch, cfg.warmup_epochs)

    epoch, start_step, global_step = 0, 0, 0
    epochs_log: list[dict[str, float]] = []  # one record per finished epoch -> history.json
    config = asdict(cfg)
    if resume and (path := resume_or_restart(ckpt_dir, config)) is not None:
        state = load_training_state(path, model=model, optimizer=optimizer, scheduler=schedule,
                                    map_location=device)
        epoch, start_step, global_step = state.epoch, state.step_in_epoch, state.global_step
        epochs_log = list(state.extra.get("history", []))
        log.info("resumed from %s (epoch %d, step %d)", path, epoch, start_step)

    skipped_total = nonfinite_run = 0
    history: list[float] = []
    model.train()

    def checkpoint(ep: int, step: int) -> None:
        save_training_state(ckpt_dir, model=model, optimizer=optimizer, scheduler=schedule, epoch=ep,
                            step_in_epoch=step, global_step=global_step, config=config, keep_last=cfg.keep_last,
                            extra={"history": epochs_log})

    while epoch < cfg.epochs:
        loader.sampler.set_epoch(epoch)
        batches = iter(loader)
        if start_step:  # same sampler order: skip the micro-batches already consumed
            batches = itertools.islice(batches, start_step * cfg.accum_steps, None)
        bar = tqdm(range(start_step, steps_per_epoch), desc=f"pretrain epoch {epoch}", disable=not dist.is_main,
                   leave=False)
        t0 = time.perf_counter()
        epoch_losses: list[float] = []
        for step in bar:
            schedule_lr = schedule.step()
            losses = []
            for micro in range(cfg.accum_steps):
                video = next(batches).to(device, non_blocking=True)  # (B, 3, T, H, W)
                mask = unwrap_model(model).sample_mask(
                    video.shape[0], generator=_mask_generator(cfg.seed, global_step, micro, dist.rank),
                    device=device)
                # DDP: all-reduce the gradients once per update, on the last micro-batch only
                last = micro == cfg.accum_steps - 1
                sync = train_model.no_sync() if dist.distributed and not last else contextlib.nullcontext()
                with sync:
                    with _autocast(device):
                        pred = forward(video, mask)
                    out = model.loss(video, pred, mask)
                    losses.append(out["loss"].detach())
                    (out["loss"] / cfg.accum_steps).backward()
            loss = torch.stack(losses).mean()
            if not torch.isfinite(loss):
                skipped_total += 1
                nonfinite_run += 1
                optimizer.zero_grad(set_to_none=True)
                log.warning("non-finite loss at step %d: update skipped (%d in a row)", global_step, nonfinite_run)
                if nonfinite_run >= cfg.max_nonfinite:
                    raise NonFiniteLossError(
                        f"{nonfinite_run} consecutive non-finite losses (last at step {global_step}); lower the lr "
                        "or enable clip_grad, then resume from the last checkpoint")
            else:
                nonfinite_run = 0
                if cfg.clip_grad:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            global_step += 1
            value = float(loss)
            history.append(value)
            epoch_losses.append(value)
            bar.set_postfix(loss=f"{value:.4f}")
            if tracker is not None:
                clips_s = total_batch * (step - start_step + 1) / max(time.perf_counter() - t0, 1e-9)
                metrics = {"train/loss": value, "train/lr": schedule_lr, "train/clips_per_s": clips_s,
                           "train/loss_appearance": float(out["loss_appearance"]),
                           "train/loss_motion": float(out["loss_motion"])}
                if device.type == "cuda":
                    metrics["gpu/max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
                tracker.log_metrics(metrics, step=global_step)
            done = step + 1 == steps_per_epoch
            if cfg.save_every_steps and global_step % cfg.save_every_steps == 0 and not done:
                checkpoint(epoch, step + 1)
            if cfg.stop_after_steps and global_step >= cfg.stop_after_steps:
                checkpoint(epoch + 1, 0) if done else checkpoint(epoch, step + 1)
                return {"stopped_at_step": global_step, "losses": history, "skipped_steps": skipped_total}
        steps_done = steps_per_epoch - start_step
        epochs_log.append({"epoch": epoch + 1, "loss": float(sum(epoch_losses) / max(len(epoch_losses), 1)),
                           "lr": float(schedule_lr),
                           "clips_per_s": total_batch * steps_done / max(time.perf_counter() - t0, 1e-9)})
        epoch, start_step = epoch + 1, 0
        checkpoint(epoch, 0)
        if dist.is_main:
            write_json_atomic(out_dir / "history.json", epochs_log)
        if dist.is_main and cfg.preview_every_epochs and (epoch % cfg.preview_every_epochs == 0 or epoch == cfg.epochs):
            preview = _save_preview(model, dataset, epoch, cfg.seed, out_dir / "previews" / f"epoch-{epoch:04d}.png")
            if tracker is not None:
                tracker.log_artifact(preview, artifact_path="previews")
    if dist.is_main:
        save_model(out_dir / "model.pt", model, extra={"pretrain_config": config, "global_step": global_step})
    mark_finished(ckpt_dir)  # a later run into this folder starts afresh instead of resuming this one
    return {"global_step": global_step, "losses": history, "skipped_steps": skipped_total, "lr": lr,
            "total_batch": total_batch, "final_loss": history[-1] if history else math.nan}
