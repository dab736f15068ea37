"""Confusion matrix of one fold run or of several folds' test predictions pooled into one set.

Inputs are fine-tuning / evaluation run folders, each with ``metrics{suffix}.json`` (uar, war,
confusion_matrix, class_names, ...) and ``predictions{suffix}.csv`` (clip_id, label, pred, p_<class>...),
read by :func:`maedfer.results.collect.read_fold` (bad input raises its ResultsInputError, a
ValueError). The figure itself is :func:`maedfer.metrics.plot_confusion_matrix` (row-normalised
recall); its size is :func:`figure_size_px`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maedfer.metrics import aggregate_folds, plot_confusion_matrix, pooled_metrics
from maedfer.results.collect import ResultsInputError, read_fold
from maedfer.viz.curves import run_labels


def figure_size_px(num_classes: int) -> tuple[int, int]:
    """Pixel size of plot_confusion_matrix's PNG: square, max(4, 0.6 C + 2) in at 100 dpi (620 px for 7 classes)."""
    side = round(100 * max(4.0, 0.6 * num_classes + 2.0))
    return side, side


def pooled_confusion(run_dirs: Sequence[str | Path], suffix: str = "") -> dict[str, Any]:
    """Metrics of the runs' predictions pooled into one set, plus the mean/std of the per-run metrics.

    Returns ``pooled`` (:func:`maedfer.metrics.pooled_metrics`), ``folds`` (:func:`aggregate_folds`
    of uar/war) and ``runs`` (the folders, in order).
    """
    if not run_dirs:
        raise ValueError("no run folders given")
    runs = [read_fold(d, position, suffix) for position, d in enumerate(run_dirs, start=1)]
    names = runs[0].metrics["class_names"]
    for d, r in zip(run_dirs, runs, strict=True):
        if r.metrics["class_names"] != names:
            raise ResultsInputError(f"{d}: classes {r.metrics['class_names']} differ from {run_dirs[0]}'s {names}; "
                                    "pool folds of one dataset only")
    pooled = pooled_metrics([(r.labels, r.preds) for r in runs], names)
    labels = run_labels(run_dirs)
    folds = aggregate_folds({lab: r.metrics for lab, r in zip(labels, runs, strict=True)}, keys=("uar", "war"))
    return {"pooled": pooled, "folds": folds, "runs": [str(d) for d in run_dirs]}


def save_confusion_figure(summary: dict[str, Any], path: str | Path, normalize: bool = True,
                          title: str | None = None) -> Path:
    """PNG of a :func:`pooled_confusion` summary; the default title gives UAR/WAR (pooled and fold mean)."""
    pooled, folds = summary["pooled"], summary["folds"]
    if title is None:
        n = folds["num_folds"]
        if n == 1:
            title = f"UAR {100 * pooled['uar']:.2f}  WAR {100 * pooled['war']:.2f}  ({pooled['num_samples']} clips)"
        else:
            m, s = folds["mean"], folds["std"]
            title = (f"{n} folds pooled: UAR {100 * pooled['uar']:.2f} WAR {100 * pooled['war']:.2f}\n"
                     f"fold mean: UAR {100 * m['uar']:.2f}±{100 * s['uar']:.2f} "
                     f"WAR {100 * m['war']:.2f}±{100 * s['war']:.2f}")
    return plot_confusion_matrix(pooled["confusion_matrix"], pooled["class_names"], path, normalize=normalize,
                                 title=title)
