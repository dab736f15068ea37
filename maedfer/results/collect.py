"""Read per-fold fine-tuning outputs and aggregate one table row (a dataset's folds).

A fold run folder holds ``metrics.json`` (:func:`maedfer.metrics.compute_metrics`) and
``predictions.csv`` (``clip_id,label,pred,p_<class>...``; label and pred are class indices), as
written by ``python -m pipeline.finetune`` and ``python -m pipeline.evaluate`` (``metrics_best.json`` /
``predictions_best.csv`` for the best-validation epoch). Optionally ``mlflow_run.json``
(``{"run_id": ...}``) names the MLflow run that trained the fold. :func:`read_fold` is the one
reader of such a folder: the tables here and the confusion figures (:mod:`maedfer.viz.confusion`).

Per row two numbers are reported, both from :mod:`maedfer.metrics`:

* **fold mean** (:func:`~maedfer.metrics.aggregate_folds`): the mean and sample standard deviation
  of the per-fold UAR/WAR. This is how the published totals are made (DFEW: the five fold UARs
  62.59 ... 65.42 average to the published 63.41).
* **pooled** (:func:`~maedfer.metrics.pooled_metrics`): UAR/WAR of all folds' predictions pooled
  into one set, which is what the paper's text (Sec. 4.1) says it does.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maedfer.metrics import aggregate_folds, confusion_matrix, pooled_metrics

logger = logging.getLogger(__name__)

TRAINING_RUN_FILE = "mlflow_run.json"
REQUIRED_METRIC_KEYS: tuple[str, ...] = (
    "uar", "war", "weighted_f1", "per_class_recall", "confusion_matrix", "class_names"
)
FOLD_SUMMARY_KEYS: tuple[str, ...] = ("uar", "war", "weighted_f1")
_FOLD_NAME = re.compile(r"fold[_-]?(\d+)$", re.IGNORECASE)
_RERUN = "re-run that fold with python -m pipeline.finetune (or pipeline.evaluate) --out <that folder>"


class ResultsInputError(ValueError):
    """Bad results input (fold run folders, row specs); the message names the file or folder and the fix (one line)."""


@dataclass(frozen=True)
class RowSpec:
    """One of our table rows: ``key`` (unique per dataset in the table), its dataset and fold run folders.

    ``paper_key`` is the paper row it is compared with (default: ``key``; ``None``: no paper counterpart).
    """

    key: str
    dataset: str
    folds: tuple[Path, ...]
    paper_key: str | None = None
    compare: bool = True

    @property
    def paper_row_key(self) -> str | None:
        """The paper row compared with this one, or None when it has no paper counterpart."""
        return (self.paper_key or self.key) if self.compare else None


@dataclass
class FoldRun:
    """One fold run folder as read by :func:`read_fold`: its metrics and its test predictions."""

    folder: Path
    fold: int
    metrics: dict[str, Any]
    labels: np.ndarray  # (N,) class indices
    preds: np.ndarray  # (N,) class indices
    clip_ids: list[str]
    training_run_id: str | None = None

    @property
    def name(self) -> str:
        """``fold<k>``."""
        return f"fold{self.fold}"

    @property
    def class_names(self) -> list[str]:
        """The class names of ``metrics`` (label and pred index them)."""
        return list(self.metrics["class_names"])


@dataclass
class RowResult:
    """A table row aggregated over its folds (:func:`aggregate_row`): fold mean/std and pooled metrics."""

    spec: RowSpec
    folds: list[FoldRun]
    class_names: list[str]
    fold_summary: dict[str, Any]  # aggregate_folds(): num_folds, mean, std, per_fold
    pooled: dict[str, Any]  # pooled_metrics(): uar, war, per_class_recall, confusion_matrix, ...
    per_class_mean: dict[str, float] = field(default_factory=dict)  # fold mean of per-class recall (0..1)
    per_class_std: dict[str, float] = field(default_factory=dict)

    @property
    def num_folds(self) -> int:
        """How many folds the row has."""
        return len(self.folds)

    def mean(self, metric: str) -> float:
        """Fold mean of ``metric`` (0..1)."""
        return float(self.fold_summary["mean"][metric])

    def std(self, metric: str) -> float:
        """Sample standard deviation of ``metric`` over the folds (0..1)."""
        return float(self.fold_summary["std"][metric])

    def pooled_value(self, metric: str) -> float:
        """``metric`` of all folds' predictions pooled into one set (0..1)."""
        return float(self.pooled[metric])


def resolve_fold_folder(path: str | Path, suffix: str = "") -> Path:
    """A fold run folder, or the folder of a given ``metrics{suffix}.json`` (Snakemake passes files)."""
    p = Path(path)
    return p.parent if p.name == f"metrics{suffix}.json" else p


def _fold_number(folder: Path, position: int) -> int:
    m = _FOLD_NAME.search(folder.name)
    return int(m.group(1)) if m else position


def _read_metrics(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    if not folder.is_dir():
        raise ResultsInputError(f"{path}: not found (no fold run folder {folder}); fix the path or run that fold's "
                                "fine-tuning (python -m pipeline.finetune --out <folder>) first")
    if not path.is_file():
        raise ResultsInputError(f"{folder}: no {name} (the fold has not finished); {_RERUN}")
    try:
        metrics = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultsInputError(f"{path}: not valid JSON ({e.msg if hasattr(e, 'msg') else e}); {_RERUN}") from None
    if not isinstance(metrics, dict):
        raise ResultsInputError(f"{path}: not a metrics mapping; {_RERUN}")
    missing = [k for k in REQUIRED_METRIC_KEYS if k not in metrics]
    if missing:
        raise ResultsInputError(f"{path}: missing {', '.join(missing)} (not written by maedfer.metrics."
                                f"compute_metrics); {_RERUN}")
    names = metrics["class_names"]
    cm = np.asarray(metrics["confusion_matrix"])
    if cm.shape != (len(names), len(names)):
        raise ResultsInputError(f"{path}: confusion_matrix has shape {cm.shape} but there are {len(names)} class "
                                f"names; {_RERUN}")
    return metrics


def _read_predictions(path: Path, metrics_name: str,
                      class_names: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    if not path.is_file():
        raise ResultsInputError(f"{path}: not found (needed for the pooled UAR/WAR and the confusion plot); "
                                f"{_RERUN}")
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or header[:3] != ["clip_id", "label", "pred"]:
            raise ResultsInputError(f"{path}: expected the columns clip_id,label,pred,p_<class>...; got "
                                    f"{','.join(header or [])[:120]!r}; {_RERUN}")
        prob_names = [h.removeprefix("p_") for h in header[3:]]
        if prob_names and prob_names != class_names:
            raise ResultsInputError(f"{path}: columns p_* name the classes {prob_names} but {metrics_name} has "
                                    f"{class_names}; the two files come from different runs: {_RERUN}")
        clip_ids, labels, preds = [], [], []
        for i, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                clip_ids.append(row[0])
                labels.append(int(row[1]))
                preds.append(int(row[2]))
            except (IndexError, ValueError):
                raise ResultsInputError(f"{path}: line {i} is not clip_id,label,pred,...; {_RERUN}") from None
    return clip_ids, np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)


def _read_training_run_id(folder: Path) -> str | None:
    path = folder / TRAINING_RUN_FILE
    if not path.is_file():
        return None
    try:
        run_id = json.loads(path.read_text()).get("run_id")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        logger.warning("%s: unreadable; the fold's training run is not linked", path)
        return None
    return str(run_id) if run_id else None


def read_fold(path: str | Path, position: int = 1, suffix: str = "") -> FoldRun:
    """Read one fold run folder (or its ``metrics{suffix}.json``); raises ResultsInputError naming the file and fix.

    ``suffix="_best"`` reads ``metrics_best.json`` / ``predictions_best.csv`` (the best-validation
    epoch's test). The fold number comes from a ``fold<k>`` folder name, else ``position``. The
    predictions must reproduce the metrics' confusion matrix (both files from one run).
    """
    folder = resolve_fold_folder(path, suffix)
    metrics_name, predictions_name = f"metrics{suffix}.json", f"predictions{suffix}.csv"
    metrics = _read_metrics(folder, metrics_name)
    names = [str(n) for n in metrics["class_names"]]
    clip_ids, labels, preds = _read_predictions(folder / predictions_name, metrics_name, names)
    if labels.size == 0:
        raise ResultsInputError(f"{folder / predictions_name}: no predictions; {_RERUN}")
    try:
        cm = confusion_matrix(labels, preds, len(names))
    except ValueError as e:
        raise ResultsInputError(f"{folder / predictions_name}: {e}; {_RERUN}") from None
    if not np.array_equal(cm, np.asarray(metrics["confusion_matrix"])):
        raise ResultsInputError(f"{folder}: {predictions_name} and {metrics_name} disagree (different confusion "
                                f"matrices); they come from different runs: {_RERUN}")
    return FoldRun(folder=folder, fold=_fold_number(folder, position), metrics=metrics, labels=labels, preds=preds,
                   clip_ids=clip_ids, training_run_id=_read_training_run_id(folder))


def _per_class_fold_mean(folds: Sequence[FoldRun], class_names: Sequence[str]) -> tuple[dict, dict]:
    """Fold mean/std of each class's recall over the folds whose test set holds that class."""
    mean, std = {}, {}
    for c in class_names:
        per_fold = {f.name: {"recall": f.metrics["per_class_recall"][c]} for f in folds
                    if c in f.metrics["per_class_recall"]}
        if per_fold:
            agg = aggregate_folds(per_fold, keys=("recall",))
            mean[c], std[c] = agg["mean"]["recall"], agg["std"]["recall"]
    return mean, std


def aggregate_row(spec: RowSpec) -> RowResult:
    """Read a row's folds and compute the fold mean/std and the pooled metrics."""
    if not spec.folds:
        raise ResultsInputError(f"row {spec.key} ({spec.dataset}): no fold run folders given")
    folds = [read_fold(p, i) for i, p in enumerate(spec.folds, start=1)]
    seen: dict[int, Path] = {}
    for f in folds:
        if f.fold in seen:
            raise ResultsInputError(f"{f.folder}: fold {f.fold} of row {spec.key} ({spec.dataset}) is given twice "
                                    f"(also {seen[f.fold]}); pass each fold's run folder once")
        seen[f.fold] = f.folder
    names = folds[0].class_names
    for f in folds[1:]:
        if f.class_names != names:
            raise ResultsInputError(f"{f.folder}: class names {f.class_names} differ from {names} in "
                                    f"{folds[0].folder}; every fold of row {spec.key} must be the same dataset")
    all_ids = [c for f in folds for c in f.clip_ids]
    if len(set(all_ids)) != len(all_ids):
        logger.warning("row %s (%s): %d clips occur in more than one fold's test set; the pooled metrics count "
                       "them more than once", spec.key, spec.dataset, len(all_ids) - len(set(all_ids)))
    summary = aggregate_folds({f.name: f.metrics for f in folds}, keys=FOLD_SUMMARY_KEYS)
    pooled = pooled_metrics([(f.labels, f.preds) for f in folds], names)
    pc_mean, pc_std = _per_class_fold_mean(folds, names)
    return RowResult(spec=spec, folds=folds, class_names=names, fold_summary=summary, pooled=pooled,
                     per_class_mean=pc_mean, per_class_std=pc_std)
