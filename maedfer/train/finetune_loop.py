"""Fine-tuning on one dataset fold and the 2-clip test protocol (the authors' recipe by default).

AdamW (0.9, 0.999), lr 1e-3 x total batch / 256, weight decay 0.05 (none on biases, norms and
representative tokens), layer-wise lr decay 0.75, drop path 0.1, mixup 0.8 / cutmix 1.0 with label
smoothing 0.1, 100 epochs with 5 warm-up. Validation every epoch on one view; at the end the
2-clip test of the last epoch (softmax averaged over the first and last 16-frame windows) is the
reported number. Outputs in ``out_dir``: ``model.pt``, ``predictions.csv``, ``metrics.json``,
``confusion.png`` and ``checkpoints/`` (full state; a restarted run resumes).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from maedfer.data.datasets import FinetuneDataset, make_loader
from maedfer.data.mixup import Mixup, SoftTargetCrossEntropy
from maedfer.data.sampling import derive_rng
from maedfer.data.shards import index_metadata, read_index
from maedfer.data.transforms import finetune_train_transform
from maedfer.io_utils import save_torch_atomic, write_json_atomic, write_text_atomic
from maedfer.metrics import compute_metrics, gather_predictions, plot_confusion_matrix
from maedfer.models import create_model, save_model
from maedfer.models.checkpoint import ModelFileError, read_model_file
from maedfer.train.checkpoint import load_training_state, mark_finished, resume_or_restart, save_training_state
from maedfer.settings import FinetuneConfig
from maedfer.train.distributed import init_distributed, seed_everything
from maedfer.train.optim import build_optimizer, scaled_lr
from maedfer.train.schedule import WarmupCosineSchedule

log = logging.getLogger(__name__)


def load_pretrained_encoder(model: torch.nn.Module, path: str | Path) -> None:
    """Copy a pre-trained encoder (maedfer model file or the authors' checkpoint) into a classifier."""
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


@torch.no_grad()
def predict(model: torch.nn.Module, loader: torch.utils.data.DataLoader, device: torch.device
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Softmax probabilities of a loader of single clips (B, C, T, H, W) or multi-clip tests (B, V, C, T, H, W),
    views averaged; gathered over ranks without padding duplicates -> (clip_idx, probs, labels)."""
    model.eval()
    idx, probs, labels = [], [], []
    for video, label, clip_idx in loader:
        video = video.to(device, non_blocking=True)
        views = video.shape[1] if video.ndim == 6 else 1
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(video.flatten(0, 1) if views > 1 else video)
        p = logits.float().softmax(-1).reshape(video.shape[0], views, -1).mean(1)  # (B, classes)
        idx.append(clip_idx.numpy()), probs.append(p.cpu().numpy()), labels.append(label.numpy())
    model.train()
    return gather_predictions(np.concatenate(idx), np.concatenate(probs), np.concatenate(labels))


def write_outputs(out_dir: Path, name: str, dataset: FinetuneDataset, class_names: list[str],
                   result: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, Any]:
    clip_idx, probs, labels = result
    metrics = compute_metrics(labels, probs, class_names)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["clip_id", "label", "pred", *[f"p_{c}" for c in class_names]])
    for i, p, y in zip(clip_idx, probs, labels, strict=True):
        writer.writerow([dataset.clip_ids[int(i)], int(y), int(p.argmax()), *[f"{v:.6f}" for v in p]])
    write_text_atomic(out_dir / f"predictions{name}.csv", buf.getvalue())
    write_json_atomic(out_dir / f"metrics{name}.json", metrics)
    plot_confusion_matrix(metrics["confusion_matrix"], class_names, out_dir / f"confusion{name}.png")
    return metrics


def finetune(cfg: FinetuneConfig, index_path: str | Path, fold: int, out_dir: str | Path,
             tracker: Any | None = None, resume: bool = True) -> dict[str, Any]:
    out_dir = Path(out_dir)
    dist = init_distributed()
    seed_everything(cfg.seed, dist.rank)
    device = dist.device
    meta = index_metadata(read_index(index_path))
    class_names = json.loads(meta.get("class_names", "null") or "null")
    if not class_names:
        raise ValueError(f"{index_path}: the index has no class names; was it built by pipeline/ingest.py?")
    model = create_model(cfg.arch, num_classes=len(class_names), drop_path_rate=cfg.drop_path, **cfg.arch_kwargs)
    model.class_names = class_names
    if cfg.init:
        load_pretrained_encoder(model, cfg.init)
    model.to(device)
    train_model: torch.nn.Module = model
    if dist.distributed:
        # With representative-token pooling the last block's local-global step never reaches the loss.
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=getattr(model, "pool", "local") == "region")

    pe = model.encoder.patch_embed
    common = dict(stride=cfg.stride, clip_len=pe.num_frames, size=pe.img_size, seed=cfg.seed)
    if cfg.warmup_epochs > cfg.epochs:
        raise ValueError(f"warmup_epochs ({cfg.warmup_epochs}) is more than epochs ({cfg.epochs}); "
                         "lower --warmup-epochs")
    augment = finetune_train_transform(pe.img_size, auto_augment=cfg.auto_augment, scale=tuple(cfg.crop_scale),
                                       reprob=cfg.reprob)
    train_set = FinetuneDataset(index_path, fold, "train", "train", transform=augment, **common)
    val_set = FinetuneDataset(index_path, fold, "test", "val", **common)
    test_set = FinetuneDataset(index_path, fold, "test", "test", **common)
    loader_kw = dict(num_workers=cfg.num_workers, num_replicas=dist.world_size, rank=dist.rank,
                     pin_memory=device.type == "cuda")
    train_loader = make_loader(train_set, cfg.batch_size, shuffle=True, seed=cfg.seed, drop_last=True, **loader_kw)
    val_loader = make_loader(val_set, cfg.batch_size, shuffle=False, **loader_kw)
    test_loader = make_loader(test_set, max(1, cfg.batch_size // 2), shuffle=False, **loader_kw)
    if len(train_loader) == 0:
        raise ValueError(f"{index_path}: fold {fold} has {len(train_set)} training clips, fewer than one batch of "
                         f"{cfg.batch_size}; lower the batch size")
    steps_per_epoch = len(train_loader)
    if cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    total_batch = cfg.batch_size * dist.world_size
    lr, min_lr = scaled_lr(cfg.base_lr, total_batch), scaled_lr(cfg.base_min_lr, total_batch)
    optimizer = build_optimizer(model, lr, cfg.weight_decay, betas=(0.9, 0.999), layer_decay=cfg.layer_decay)
    schedule = WarmupCosineSchedule.from_epochs(optimizer, lr, min_lr, cfg.epochs, steps_per_epoch, cfg.warmup_epochs)
    mixup = Mixup(cfg.mixup, cfg.cutmix, label_smoothing=cfg.label_smoothing, num_classes=len(class_names),
                  seed=cfg.seed) if cfg.mixup > 0 or cfg.cutmix > 0 else None
    criterion = SoftTargetCrossEntropy()

    epoch, global_step = 0, 0
    history: list[dict[str, float]] = []  # one record per epoch -> history.json
    best: dict[str, float] = {"epoch": 0, "val/uar": -1.0}  # best-validation epoch (test_best)
    best_path = out_dir / "checkpoints" / "best-model.pt"
    ckpt_dir = out_dir / "checkpoints"
    config = asdict(cfg)
    if resume and (path := resume_or_restart(ckpt_dir, config)) is not None:
        state = load_training_state(path, model=model, optimizer=optimizer, scheduler=schedule, map_location=device)
        epoch, global_step = state.epoch, state.global_step
        history = list(state.extra.get("history", []))
        best = dict(state.extra.get("best", best))
    while epoch < cfg.epochs:
        train_loader.sampler.set_epoch(epoch)
        val_loader.sampler.set_epoch(epoch)
        model.train()
        t0, losses = time.perf_counter(), []
        batches = iter(train_loader)
        for _ in tqdm(range(steps_per_epoch), desc=f"finetune fold {fold} epoch {epoch}", leave=False,
                      disable=not dist.is_main):
            video, label, _ = next(batches)
            video, label = video.to(device, non_blocking=True), label.to(device)
            if mixup is not None:
                video, target = mixup(video, label, rng=derive_rng(cfg.seed, global_step, dist.rank))
            else:  # label smoothing on its own (timm's LabelSmoothingCrossEntropy)
                n = len(class_names)
                target = torch.nn.functional.one_hot(label, n).float() * (1 - cfg.label_smoothing) + \
                    cfg.label_smoothing / n
            schedule.step()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = train_model(video)
            loss = criterion(logits.float(), target)
            if torch.isfinite(loss):
                loss.backward()
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            global_step += 1
        _, val_probs, val_labels = predict(model, val_loader, device)
        val = compute_metrics(val_labels, val_probs, class_names)
        epoch += 1
        record = {"epoch": epoch, "train/loss": float(np.mean(losses)), "val/uar": val["uar"], "val/war": val["war"],
                  "train/clips_per_s": total_batch * steps_per_epoch / (time.perf_counter() - t0)}
        history.append(record)
        if cfg.test_best and val["uar"] > best["val/uar"]:
            best = {"epoch": epoch, "val/uar": val["uar"]}
            if dist.is_main:
                save_torch_atomic(model.state_dict(), best_path)
        log.info("fold %d epoch %d: %s", fold, epoch, record)
        if tracker is not None:
            tracker.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch)
        save_training_state(ckpt_dir, model=model, optimizer=optimizer, scheduler=schedule, epoch=epoch,
                            step_in_epoch=0, global_step=global_step, config=config,
                            extra={"history": history, "best": best})
        if dist.is_main:
            write_json_atomic(out_dir / "history.json", history)
    result = predict(model, test_loader, device)
    metrics: dict[str, Any] = {}
    if dist.is_main:
        metrics = write_outputs(out_dir, "", test_set, class_names, result)
        save_model(out_dir / "model.pt", model, class_names=class_names, extra={"finetune_config": config,
                                                                               "fold": fold})
        if tracker is not None:
            tracker.log_metrics({"test/uar": metrics["uar"], "test/war": metrics["war"]}, step=epoch)
            for name in ("metrics.json", "predictions.csv", "confusion.png", "history.json"):
                tracker.log_artifact(out_dir / name)
    summary: dict[str, Any] = {"metrics": metrics, "history": history}
    if cfg.test_best and best["epoch"] > 0:
        # every rank loads the weights the main rank saved at the best-validation epoch
        from maedfer.train.distributed import barrier

        barrier()
        model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True))
        result = predict(model, test_loader, device)
        if dist.is_main:
            best_metrics = write_outputs(out_dir, "_best", test_set, class_names, result)
            best_metrics["best_epoch"] = int(best["epoch"])
            write_json_atomic(out_dir / "metrics_best.json", best_metrics)
            summary["metrics_best"] = best_metrics
            log.info("fold %d: best validation epoch %d, test UAR %.4f (last epoch %.4f)", fold, best["epoch"],
                     best_metrics["uar"], metrics["uar"])
            if tracker is not None:
                tracker.log_metrics({"test_best/uar": best_metrics["uar"], "test_best/war": best_metrics["war"],
                                     "test_best/epoch": best["epoch"]}, step=epoch)
                tracker.log_artifact(out_dir / "metrics_best.json")
    mark_finished(ckpt_dir)  # a later run into this folder starts afresh instead of resuming this one
    return summary
