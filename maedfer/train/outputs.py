"""Test-time predictions of a classifier and the files they are written to (predictions, metrics, confusion)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maedfer.data.datasets import FinetuneDataset
from maedfer.io_utils import write_json_atomic, write_text_atomic
from maedfer.metrics import compute_metrics, gather_predictions, plot_confusion_matrix
from maedfer.train.policy import autocast


@torch.no_grad()
def predict(model: torch.nn.Module, loader: torch.utils.data.DataLoader, device: torch.device,
            precision: str | None = None, forward: Callable[[torch.Tensor], torch.Tensor] | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Softmax probabilities of a loader, gathered over ranks -> (clip_idx, probs, labels).

    The loader yields single clips (B, C, T, H, W) or multi-clip tests (B, V, C, T, H, W), whose
    views' probabilities are averaged; ranks' padding duplicates are dropped. Leaves the model in
    training mode. ``precision``: the autocast of the forward passes (None: bf16 on CUDA, fp32 on
    CPU; a fine-tuning run evaluates in its training precision, as the authors' runs do). ``forward``:
    what runs the batches (default ``model``; a training run passes its ``engine.eval_forward``).
    """
    model.eval()
    idx, probs, labels = [], [], []
    for video, label, clip_idx in loader:
        video = video.to(device, non_blocking=True)
        views = video.shape[1] if video.ndim == 6 else 1
        with autocast(device, precision):
            logits = (forward or model)(video.flatten(0, 1) if views > 1 else video)
        p = logits.float().softmax(-1).reshape(video.shape[0], views, -1).mean(1)  # (B, classes)
        idx.append(clip_idx.numpy()), probs.append(p.cpu().numpy()), labels.append(label.numpy())
    model.train()
    return gather_predictions(np.concatenate(idx), np.concatenate(probs), np.concatenate(labels))


def write_outputs(out_dir: Path, name: str, dataset: FinetuneDataset, class_names: list[str],
                  result: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, Any]:
    """Write ``predictions{name}.csv``, ``metrics{name}.json`` and ``confusion{name}.png``; returns the metrics."""
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
