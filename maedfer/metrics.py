"""Classification metrics over a WHOLE test set: UAR, WAR, per-class recall, confusion matrix, weighted F1.

Conventions (fixed here, used by every report):

* Labels and predictions are class indices ``0..C-1`` into ``class_names``.
* **UAR** is the mean per-class recall over the classes PRESENT in the test labels
  (``uar_over="present"``, the default). A class with no test sample has no recall, so it is
  left out instead of counting as 0 (which would punish the model for the split) or as NaN
  (which would poison the mean). The authors' code (``confusion_matrix(...).diagonal() /
  sum(axis=1)`` then ``np.mean``) gives the same number whenever every class predicted also
  occurs in the labels, and NaN otherwise. ``uar_over="all"`` counts an absent class as recall 0
  over all ``C`` classes (scikit-learn's ``recall_score(average="macro", labels=range(C),
  zero_division=0)``).
* **WAR** is plain accuracy.
* **per_class_recall** holds only the classes present in the labels; absent classes are missing
  from it (their ``support`` is 0), so the dict stays valid JSON (no NaN).
* **weighted_f1** is scikit-learn's support-weighted F1 over all classes, ``zero_division=0``
  (a class never predicted has precision 0 -> F1 0; an absent class has weight 0).
* A DDP test loader (``DistributedSampler``) pads ranks with repeated samples:
  :func:`gather_predictions` collects every rank's rows and keeps one row per clip index, so the
  metrics are those of the dataset, never an average of per-rank metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from maedfer.io_utils import atomic_path

logger = logging.getLogger(__name__)

ArrayLike = np.ndarray | torch.Tensor | Sequence[Any]
UarOver = Literal["present", "all"]
SUMMARY_KEYS: tuple[str, ...] = ("uar", "war", "weighted_f1")


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _as_predictions(scores: ArrayLike, num_classes: int) -> np.ndarray:
    arr = _to_numpy(scores)
    if arr.ndim == 2:
        if arr.shape[1] != num_classes:
            raise ValueError(f"scores have {arr.shape[1]} columns but there are {num_classes} class names")
        return arr.argmax(axis=1).astype(np.int64)  # (N,)
    if arr.ndim != 1:
        raise ValueError(f"predictions must be (N,) class indices or (N, C) scores, got shape {arr.shape}")
    return arr.astype(np.int64)


def _check_indices(arr: np.ndarray, num_classes: int, what: str) -> None:
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(f"{what} must lie in 0..{num_classes - 1}, got values {arr.min()}..{arr.max()}")


def confusion_matrix(labels: ArrayLike, preds: ArrayLike, num_classes: int) -> np.ndarray:
    """(C, C) counts; rows are true classes, columns predicted classes."""
    y = _to_numpy(labels).astype(np.int64).ravel()
    p = _to_numpy(preds).astype(np.int64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"{y.size} labels but {p.size} predictions")
    _check_indices(y, num_classes, "labels")
    _check_indices(p, num_classes, "predictions")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y, p), 1)
    return cm


def compute_metrics(
    labels: ArrayLike, scores: ArrayLike, class_names: Sequence[str], uar_over: UarOver = "present"
) -> dict[str, Any]:
    """Metrics of one test set; ``scores`` are (N, C) probabilities/logits or (N,) predicted indices.

    Returns a JSON-serialisable dict: ``uar``, ``war``, ``weighted_f1`` (floats in 0..1),
    ``per_class_recall`` {name: recall} (present classes only), ``support`` {name: count},
    ``absent_classes``, ``never_predicted``, ``confusion_matrix`` (C x C list, rows = true),
    ``class_names``, ``num_samples``, ``uar_over``.
    """
    from sklearn.metrics import f1_score

    names = [str(n) for n in class_names]
    c = len(names)
    if c == 0:
        raise ValueError("class_names is empty")
    if uar_over not in ("present", "all"):
        raise ValueError(f"uar_over must be 'present' or 'all', got {uar_over!r}")
    y = _to_numpy(labels).astype(np.int64).ravel()
    p = _as_predictions(scores, c)
    if y.size == 0:
        raise ValueError("no samples to score")
    cm = confusion_matrix(y, p, c)
    support = cm.sum(axis=1)  # (C,)
    present = support > 0
    recall = np.divide(cm.diagonal(), support, out=np.zeros(c, dtype=np.float64), where=present)  # (C,)
    uar = float(recall[present].mean()) if uar_over == "present" else float(recall.mean())
    war = float(cm.trace() / cm.sum())
    wf1 = float(f1_score(y, p, labels=list(range(c)), average="weighted", zero_division=0))
    predicted = cm.sum(axis=0) > 0
    return {
        "uar": uar,
        "war": war,
        "weighted_f1": wf1,
        "per_class_recall": {names[i]: float(recall[i]) for i in range(c) if present[i]},
        "support": {names[i]: int(support[i]) for i in range(c)},
        "absent_classes": [names[i] for i in range(c) if not present[i]],
        "never_predicted": [names[i] for i in range(c) if not predicted[i]],
        "confusion_matrix": cm.tolist(),
        "class_names": names,
        "num_samples": int(y.size),
        "uar_over": uar_over,
    }


def deduplicate_predictions(
    clip_idx: ArrayLike, probs: ArrayLike, labels: ArrayLike, view_idx: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per clip, sorted by clip index.

    Rows with the same key (``clip_idx``, or ``(clip_idx, view_idx)`` when views are given) are
    copies made by sampler padding: the first is kept. With ``view_idx`` the distinct views of a
    clip are then averaged (the authors' test protocol: softmax averaged over temporal clips), so
    pass probabilities, not logits. A clip whose copies disagree on the label is an error.
    """
    clips = _to_numpy(clip_idx).astype(np.int64).ravel()
    scores = _to_numpy(probs)
    ys = _to_numpy(labels).astype(np.int64).ravel()
    if not (len(clips) == len(scores) == len(ys)):
        raise ValueError(f"clip_idx, probs and labels differ in length: {len(clips)}, {len(scores)}, {len(ys)}")
    views = np.zeros_like(clips) if view_idx is None else _to_numpy(view_idx).astype(np.int64).ravel()
    if len(views) != len(clips):
        raise ValueError(f"view_idx has {len(views)} rows but clip_idx has {len(clips)}")
    uniq, inverse = np.unique(clips, return_inverse=True)
    clip_label = np.empty(len(uniq), dtype=np.int64)
    clip_label[inverse] = ys
    if not np.array_equal(clip_label[inverse], ys):
        bad = uniq[np.unique(inverse[clip_label[inverse] != ys])][:5].tolist()
        raise ValueError(f"clips {bad} have rows with different labels; the test loader mixes up clip indices")
    _, first = np.unique(np.stack([clips, views], axis=1), axis=0, return_index=True)  # one row per key
    first = np.sort(first)
    clips, scores, ys = clips[first], scores[first], ys[first]
    if view_idx is None:
        order = np.argsort(clips, kind="stable")
        return clips[order], scores[order], ys[order]
    inverse = np.searchsorted(uniq, clips)
    sums = np.zeros((len(uniq),) + scores.shape[1:], dtype=np.float64)
    np.add.at(sums, inverse, scores.astype(np.float64))
    counts = np.bincount(inverse, minlength=len(uniq)).reshape((-1,) + (1,) * (scores.ndim - 1))
    return uniq, (sums / counts).astype(scores.dtype, copy=False), clip_label


def gather_predictions(
    clip_idx: ArrayLike, probs: ArrayLike, labels: ArrayLike, view_idx: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collect every rank's predictions, drop sampler-padding duplicates; returns (clip_idx, probs, labels).

    A collective: call it on every rank. Every rank gets the same arrays, sorted by clip index
    (numpy, on CPU). Outside a process group it only de-duplicates. See :func:`deduplicate_predictions`.
    """
    import torch.distributed as dist

    local = [_to_numpy(clip_idx), _to_numpy(probs), _to_numpy(labels)]
    local.append(None if view_idx is None else _to_numpy(view_idx))
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, local)
        merged = [np.concatenate([p[i] for p in parts]) for i in range(3)]
        views = None if view_idx is None else np.concatenate([p[3] for p in parts])
    else:
        merged, views = local[:3], local[3]
    return deduplicate_predictions(*merged, view_idx=views)


def plot_confusion_matrix(
    cm: ArrayLike, class_names: Sequence[str], path: str | Path, normalize: bool = True, title: str | None = None
) -> Path:
    """Save a confusion-matrix heat map as PNG (atomically); rows are normalised to recall if ``normalize``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = _to_numpy(cm).astype(np.float64)
    c = len(class_names)
    if counts.shape != (c, c):
        raise ValueError(f"confusion matrix has shape {counts.shape} but there are {c} class names")
    rows = counts.sum(axis=1, keepdims=True)
    shown = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0) if normalize else counts
    size = max(4.0, 0.6 * c + 2.0)
    fig = Figure(figsize=(size, size), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(c), labels=list(class_names), rotation=45, ha="right")
    ax.set_yticks(range(c), labels=list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    threshold = (shown.max() if shown.size else 0.0) / 2.0
    for i in range(c):
        for j in range(c):
            text = f"{shown[i, j]:.2f}" if normalize else f"{int(shown[i, j])}"
            ax.text(
                j, i, text, ha="center", va="center", fontsize=8, color="white" if shown[i, j] > threshold else "black"
            )
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return path


def aggregate_folds(
    fold_metrics: Mapping[str, Mapping[str, Any]], keys: Sequence[str] = SUMMARY_KEYS, ddof: int = 1
) -> dict[str, Any]:
    """Mean and standard deviation of per-fold metrics (the authors' protocol: the mean of folds).

    ``fold_metrics`` maps a fold name to that fold's :func:`compute_metrics` dict. ``std`` uses
    ``ddof`` (1: sample standard deviation; 0.0 for a single fold).
    """
    if not fold_metrics:
        raise ValueError("no folds to aggregate")
    folds = list(fold_metrics)
    mean: dict[str, float] = {}
    std: dict[str, float] = {}
    for k in keys:
        missing = [f for f in folds if k not in fold_metrics[f]]
        if missing:
            raise ValueError(f"metric {k!r} missing for folds {missing}")
        vals = np.array([float(fold_metrics[f][k]) for f in folds])
        mean[k] = float(vals.mean())
        std[k] = float(vals.std(ddof=ddof)) if len(vals) > ddof else 0.0
    return {
        "num_folds": len(folds),
        "folds": folds,
        "mean": mean,
        "std": std,
        "ddof": ddof,
        "per_fold": {f: {k: float(fold_metrics[f][k]) for k in keys} for f in folds},
    }


def pooled_metrics(
    fold_predictions: Sequence[tuple[ArrayLike, ArrayLike]], class_names: Sequence[str], uar_over: UarOver = "present"
) -> dict[str, Any]:
    """Metrics of all folds' test predictions pooled into one set: ``[(labels, scores), ...]`` per fold."""
    if not fold_predictions:
        raise ValueError("no folds to pool")
    labels = np.concatenate([_to_numpy(y).astype(np.int64).ravel() for y, _ in fold_predictions])
    preds = np.concatenate([_as_predictions(s, len(class_names)) for _, s in fold_predictions])
    return compute_metrics(labels, preds, class_names, uar_over=uar_over)
