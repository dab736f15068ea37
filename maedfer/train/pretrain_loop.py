"""MAE-DFER pre-training: data -> masked reconstruction, as a step function and hooks of the engine.

The paper's recipe is the default (ARCHITECTURE.md): AdamW (0.9, 0.95), weight decay 0.05,
lr 3e-4 x total batch / 256 with per-step warm-up then cosine to 1e-5 x batch / 256, mask
ratio 0.9, lambda 0.5, 16 frames at stride 4. Precision, non-finite losses, accumulation (or a
``total_batch``), the schedule (``schedule_epochs``: a run may stop part-way down a longer cosine,
and still writes its model and is marked finished), checkpoints and resume are
:class:`maedfer.train.engine.Engine`'s. ``decay_region_tokens`` decays the encoder's region tokens
as the authors' pre-training does.

Determinism: the mask of update ``g`` (micro-batch ``k``) is drawn from a generator seeded by
(seed, g, k, rank), data randomness from (seed, epoch, clip), and a checkpoint holds the full
training state, so a run killed after any saved step and resumed ends with the same weights.
Data path (``data_path``; "auto": the device path on CUDA): with the device path the loader's workers
only read JPEG bytes and draw each clip's multi-scale crop; decoding and cropping run on the GPU
(:mod:`maedfer.data.gpu`), as does the ranking that builds the masks.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from maedfer.data.datasets import PretrainDataset, make_loader
from maedfer.data.gpu.batch import BatchAugment, DeviceBatch, collate_device
from maedfer.data.gpu.select import resolve_data_path
from maedfer.data.shards.cache import ClipBytesCache
from maedfer.models import create_model, save_model
from maedfer.settings import PretrainConfig
from maedfer.train.engine import Engine, EpochStats, Hooks, Recipe

log = logging.getLogger(__name__)


def _mask_generator(seed: int, step: int, micro: int, rank: int) -> torch.Generator:
    """Return a generator that depends only on (seed, update, micro-batch, rank): resumable masks."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 1_009 + micro) * 8_191 + rank)


def _save_preview(model: torch.nn.Module, dataset: PretrainDataset, epoch: int, seed: int, path: Path,
                  on_device: BatchAugment | None = None) -> Path:
    """Draw the dataset's first clip's reconstruction with a fixed mask (no training RNG is consumed)."""
    from maedfer.viz.reconstruction import save_reconstruction_figure

    device = next(model.parameters()).device
    sample = dataset[0]
    if on_device is not None:  # the device path's sample: bytes + plan
        video = on_device(collate_device([sample]))  # (1, 3, T, H, W)
    else:
        video = sample.unsqueeze(0).to(device)  # (1, 3, T, H, W)
    mask = model.sample_mask(1, generator=torch.Generator().manual_seed(seed), device=device)
    try:
        return save_reconstruction_figure(model, video, mask, path, title=f"epoch {epoch}")
    finally:
        model.train()


def pretrain(cfg: PretrainConfig, index_path: str | Path, out_dir: str | Path, resume: bool = True,
             tracker: Any | None = None) -> dict[str, Any]:
    """Run (or continue) pre-training and return a summary.

    Writes ``out_dir/checkpoints/``, ``history.json`` (one record per epoch), ``previews/`` and,
    at the end, ``out_dir/model.pt`` (the whole pre-training model, maedfer format, with the
    settings and the precision used). ``stop_after_steps`` stops like a killed run: no model file,
    the next call resumes.
    """
    out_dir = Path(out_dir)
    config = asdict(cfg)
    engine = Engine(Recipe.of(cfg), out_dir, config, desc="pretrain", tracker=tracker, resume=resume,
                    log_steps=True)
    device, rank = engine.device, engine.dist.rank
    model = engine.attach(create_model(cfg.arch, **cfg.arch_kwargs))
    pe = model.encoder.patch_embed
    data_path = resolve_data_path(getattr(cfg, "data_path", "cpu"), device)
    dataset = PretrainDataset(index_path, stride=cfg.stride, clip_len=pe.num_frames, size=pe.img_size, seed=cfg.seed,
                              decode=data_path, cache=ClipBytesCache.of_megabytes(cfg.cache_mb))
    on_device = BatchAugment(dataset.transform, device, dataset.load_size_for_device) if data_path == "device" else None
    log.info("pretrain: training data path %s", data_path)
    loader = make_loader(dataset, cfg.batch_size, shuffle=True, seed=cfg.seed, num_workers=cfg.num_workers,
                         drop_last=True, num_replicas=engine.dist.world_size, rank=rank,
                         pin_memory=device.type == "cuda", persistent_workers=cfg.num_workers > 0)
    if len(loader) < engine.accum_steps:
        raise ValueError(f"{index_path}: {len(dataset)} clips give {len(loader)} batches of {cfg.batch_size} "
                         f"per process, fewer than accum_steps={engine.accum_steps}; lower batch_size or accum_steps")
    # the authors' optimiser decays the encoder's no-weight-decay parameters (region tokens) in pre-training
    decay = {f"encoder.{n}" for n in model.encoder.no_weight_decay()} if cfg.decay_region_tokens else set()
    engine.configure(len(loader), num_samples=len(dataset), decay_names=decay)

    def step(video: torch.Tensor | DeviceBatch, micro: int) -> dict[str, torch.Tensor]:
        if on_device is not None:  # JPEG bytes + plans -> decoded, cropped on the device
            video = on_device(video)  # (B, 3, T, H, W)
        video = video.to(device, non_blocking=True)  # (B, 3, T, H, W)
        mask = model.sample_mask(video.shape[0], generator=_mask_generator(cfg.seed, engine.global_step, micro, rank),
                                 device=device)
        with engine.autocast():
            pred = engine.forward(video, mask)
        return model.loss(video, pred, mask)  # {"loss", "loss_appearance", "loss_motion"}

    def epoch_end(stats: EpochStats) -> dict[str, Any]:
        return {"epoch": stats.epoch + 1, "loss": float(sum(stats.losses) / max(len(stats.losses), 1)),
                "lr": float(stats.lr),
                "clips_per_s": stats.clips_per_s(engine.total_batch)}

    def preview(epoch: int) -> None:
        if engine.dist.is_main and cfg.preview_every_epochs and (
                epoch % cfg.preview_every_epochs == 0 or epoch == cfg.epochs):
            path = _save_preview(model, dataset, epoch, cfg.seed, out_dir / "previews" / f"epoch-{epoch:04d}.png",
                                 on_device)
            if tracker is not None:
                tracker.log_artifact(path, artifact_path="previews")

    def train_end() -> dict[str, Any]:
        if engine.dist.is_main:
            save_model(out_dir / "model.pt", model,
                       extra={"pretrain_config": engine.config, "global_step": engine.global_step})
        losses = engine.losses
        return {"global_step": engine.global_step, "losses": losses, "skipped_steps": engine.guard.skipped,
                "lr": engine.lr, "total_batch": engine.total_batch, "final_loss": losses[-1] if losses else math.nan,
                "accum_steps": engine.accum_steps, "precision": engine.precision,
                "amp_skipped_steps": engine.guard.overflows}

    summary = engine.fit(loader, step, Hooks(epoch_end=epoch_end, after_checkpoint=preview, train_end=train_end))
    if summary is None:  # stop_after_steps
        return {"stopped_at_step": engine.global_step, "losses": engine.losses, "skipped_steps": engine.guard.skipped}
    return summary

