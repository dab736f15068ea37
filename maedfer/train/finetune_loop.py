"""Fine-tuning on one dataset fold and the 2-clip test protocol, as a step function and hooks of the engine.

The authors' recipe by default: AdamW (0.9, 0.999), lr 1e-3 x total batch / 256, weight decay
0.05 (none on biases, norms and representative tokens), layer-wise lr decay 0.75, drop path 0.1,
mixup 0.8 / cutmix 1.0 with label smoothing 0.1, 100 epochs with 5 warm-up. Validation every
epoch on one view (``eval_every``: every N epochs and after the last; the training is the same); at
the end the 2-clip test of the last epoch (softmax averaged over the first and last 16-frame windows)
is the reported number (``test_best``: also the best-validation epoch's). Outputs in ``out_dir``:
``model.pt``, ``predictions.csv``, ``metrics.json``, ``confusion.png``, ``history.json`` and
``checkpoints/`` (full state; a restarted run resumes).
Precision, accumulation (or a ``total_batch``), non-finite losses, checkpoints and resume are
:class:`maedfer.train.engine.Engine`'s. Mixup/CutMix draw once per micro-batch (``batch_size``
clips), as the authors' runs draw once per GPU batch: with a ``total_batch`` of 96 and micro-batches
of 32, one GPU with 3 micro-batches per update and three GPUs mix the same way.
Data path (``data_path``; "auto": the device path on CUDA): with the device path the training loader's
workers only read JPEG bytes and draw each clip's augmentation; decoding, augmentation, Mixup/CutMix
and the soft targets run on the GPU (:mod:`maedfer.data.gpu`). Validation and test read on the CPU.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maedfer.data.datasets import FinetuneDataset, make_loader
from maedfer.data.gpu.batch import BatchAugment, DeviceBatch
from maedfer.data.gpu.select import resolve_data_path
from maedfer.data.mixup import Mixup, SoftTargetCrossEntropy
from maedfer.data.sampling import derive_rng
from maedfer.data.shards import index_metadata, read_index
from maedfer.data.shards.cache import ClipBytesCache
from maedfer.data.transforms import finetune_train_transform
from maedfer.io_utils import save_torch_atomic, write_json_atomic
from maedfer.metrics import compute_metrics
from maedfer.models import create_model, save_model
from maedfer.settings import FinetuneConfig
from maedfer.settings.training import classifier_build_kwargs
from maedfer.train.distributed import barrier
from maedfer.train.engine import Engine, EpochStats, Hooks, Recipe
from maedfer.train.outputs import predict, write_outputs
from maedfer.train.transfer import load_pretrained_encoder

__all__ = ["finetune", "load_pretrained_encoder"]

log = logging.getLogger(__name__)


def finetune(cfg: FinetuneConfig, index_path: str | Path, fold: int, out_dir: str | Path,
             tracker: Any | None = None, resume: bool = True) -> dict[str, Any]:
    """Fine-tune (or continue) on ``fold`` of an index, run the 2-clip test; returns metrics and history."""
    out_dir = Path(out_dir)
    config = asdict(cfg)
    # the engine's default non-finite limit: FinetuneConfig has no such setting
    engine = Engine(Recipe.of(cfg, betas=(0.9, 0.999)), out_dir, config, desc=f"finetune fold {fold}",
                    tracker=tracker, resume=resume)
    device, is_main = engine.device, engine.dist.is_main
    data_path = resolve_data_path(getattr(cfg, "data_path", "cpu"), device)
    class_names = json.loads(index_metadata(read_index(index_path)).get("class_names", "null") or "null")
    if not class_names:
        raise ValueError(f"{index_path}: the index has no class names; was it built by python -m pipeline.ingest?")
    model = create_model(cfg.arch, num_classes=len(class_names), **classifier_build_kwargs(config),
                         **cfg.arch_kwargs)
    model.class_names = class_names
    if cfg.init:
        load_pretrained_encoder(model, cfg.init)
    # With representative-token pooling the last block's local-global step never reaches the loss.
    engine.attach(model, find_unused_parameters=getattr(model, "pool", "local") == "region")

    pe = model.encoder.patch_embed
    cache = ClipBytesCache.of_megabytes(cfg.cache_mb)  # one for the three sets (same clips)
    common = dict(stride=cfg.stride, clip_len=pe.num_frames, size=pe.img_size, seed=cfg.seed, cache=cache)
    augment = finetune_train_transform(pe.img_size, auto_augment=cfg.auto_augment, scale=tuple(cfg.crop_scale),
                                       reprob=cfg.reprob)
    train_set = FinetuneDataset(index_path, fold, "train", "train", transform=augment, decode=data_path, **common)
    on_device = BatchAugment(augment, device, train_set.load_size_for_device) if data_path == "device" else None
    log.info("fold %d: training data path %s", fold, data_path)
    val_set = FinetuneDataset(index_path, fold, "test", "val", **common)
    test_set = FinetuneDataset(index_path, fold, "test", "test", **common)
    loader_kw = dict(num_workers=cfg.num_workers, num_replicas=engine.dist.world_size, rank=engine.dist.rank,
                     pin_memory=device.type == "cuda")
    train_loader = make_loader(train_set, cfg.batch_size, shuffle=True, seed=cfg.seed, drop_last=True, **loader_kw)
    val_loader = make_loader(val_set, cfg.batch_size, shuffle=False, **loader_kw)
    test_loader = make_loader(test_set, max(1, cfg.batch_size // 2), shuffle=False, **loader_kw)
    if len(train_loader) == 0:
        raise ValueError(f"{index_path}: fold {fold} has {len(train_set)} training clips, fewer than one batch of "
                         f"{cfg.batch_size}; lower the batch size")
    n = len(class_names)
    mixup = Mixup(cfg.mixup, cfg.cutmix, label_smoothing=cfg.label_smoothing, num_classes=n,
                  seed=cfg.seed) if cfg.mixup > 0 or cfg.cutmix > 0 else None
    criterion = SoftTargetCrossEntropy()
    best: dict[str, float] = {"epoch": 0, "val/uar": -1.0}  # best-validation epoch (test_best)
    best_path = engine.ckpt_dir / "best-model.pt"
    best.update(engine.configure(len(train_loader), num_samples=len(train_set)).get("best", {}))

    def step(batch: tuple[torch.Tensor, ...] | DeviceBatch, micro: int) -> dict[str, torch.Tensor]:
        if on_device is not None:  # JPEG bytes + plans -> decoded, augmented on the device
            video, label = on_device(batch), batch.labels.to(device)  # (B, 3, T, H, W), (B,)
        else:
            video, label, _ = batch
            video, label = video.to(device, non_blocking=True), label.to(device)  # (B, 3, T, H, W), (B,)
        if mixup is not None:
            # one draw per micro-batch; micro 0 keeps the (seed, update, rank) stream of runs without accumulation
            rng = derive_rng(cfg.seed, engine.global_step, engine.dist.rank, micro)
            video, target = mixup(video, label, rng=rng)
        else:  # label smoothing on its own (timm's LabelSmoothingCrossEntropy)
            target = torch.nn.functional.one_hot(label, n).float() * (1 - cfg.label_smoothing) + cfg.label_smoothing / n
        with engine.autocast():
            logits = engine.forward(video)  # (B, classes)
        return {"loss": criterion(logits.float(), target)}

    def epoch_end(stats: EpochStats) -> dict[str, Any]:
        epoch = stats.epoch + 1
        clips_s = stats.clips_per_s(engine.total_batch)
        record = {"epoch": epoch, "train/loss": float(np.mean(stats.losses)), "train/clips_per_s": clips_s}
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:  # other epochs skip validation (same weights)
            _, val_probs, val_labels = predict(model, val_loader, device, engine.precision, engine.eval_forward)
            val = compute_metrics(val_labels, val_probs, class_names)
            record.update({"val/uar": val["uar"], "val/war": val["war"]})
            if cfg.test_best and val["uar"] > best["val/uar"]:
                best.update({"epoch": epoch, "val/uar": val["uar"]})
                if is_main:
                    save_torch_atomic(model.state_dict(), best_path)
        log.info("fold %d epoch %d: %s", fold, epoch, record)
        if tracker is not None:
            tracker.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch)
        return record

    def train_end() -> dict[str, Any]:
        if cache is not None:
            log.info("fold %d: clip cache %s", fold, cache.stats())
        result, metrics = predict(model, test_loader, device, engine.precision, engine.eval_forward), {}
        if is_main:
            metrics = write_outputs(out_dir, "", test_set, class_names, result)
            save_model(out_dir / "model.pt", model, class_names=class_names, extra={"finetune_config": engine.config,
                                                                                   "fold": fold})
            if tracker is not None:
                tracker.log_metrics({"test/uar": metrics["uar"], "test/war": metrics["war"]}, step=engine.epoch)
                for name in ("metrics.json", "predictions.csv", "confusion.png", "history.json"):
                    tracker.log_artifact(out_dir / name)
        summary: dict[str, Any] = {"metrics": metrics, "history": engine.history}
        if cfg.test_best and best["epoch"] > 0:
            barrier()  # every rank loads the weights the main rank saved at the best-validation epoch
            model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True))
            result = predict(model, test_loader, device, engine.precision, engine.eval_forward)
            if is_main:
                best_metrics = write_outputs(out_dir, "_best", test_set, class_names, result)
                best_metrics["best_epoch"] = int(best["epoch"])
                write_json_atomic(out_dir / "metrics_best.json", best_metrics)
                summary["metrics_best"] = best_metrics
                log.info("fold %d: best validation epoch %d, test UAR %.4f (last epoch %.4f)", fold, best["epoch"],
                         best_metrics["uar"], metrics["uar"])
                if tracker is not None:
                    tracker.log_metrics({"test_best/uar": best_metrics["uar"], "test_best/war": best_metrics["war"],
                                         "test_best/epoch": best["epoch"]}, step=engine.epoch)
                    tracker.log_artifact(out_dir / "metrics_best.json")
        return summary

    return engine.fit(train_loader, step, Hooks(epoch_end=epoch_end, train_end=train_end,
                                                epoch_start=val_loader.sampler.set_epoch,
                                                state=lambda: {"best": best}))

