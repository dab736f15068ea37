"""Machine-readable outputs for DVC: a ``metrics.json`` per table and confusion-matrix CSVs.

``metrics.json`` (DVC ``metrics:``) holds, per our row and dataset, the fold mean and std, the pooled
UAR/WAR, the paper's numbers and the differences, all in percent::

    {"table": "table5", "profile": "full", "unit": "percent",
     "rows": {"mae_dfer": {"dfew": {"uar_mean": 63.1, "uar_std": 1.2, "war_mean": ..., "uar_pooled": ...,
                                    "paper_uar": 63.41, "uar_diff": -0.31, "per_fold": {"fold1": {...}}, ...}}}}

The confusion CSV (DVC ``plots:`` with ``template: confusion, x: actual, y: predicted``) has one
line per test clip of all folds pooled, columns ``actual,predicted``, class names as values: DVC's
confusion template counts the (actual, predicted) pairs itself.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maedfer.io_utils import write_json_atomic, write_text_atomic
from maedfer.results.collect import RowResult
from maedfer.results.dvc_names import curves_file_name  # noqa: F401 (re-exported)
from maedfer.results.paper import PaperTable
from maedfer.results.tables import diff, pct

CONFUSION_DIR = "confusion"
CONFUSION_COLUMNS: tuple[str, str] = ("actual", "predicted")


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def row_metrics(result: RowResult, table: PaperTable) -> dict[str, Any]:
    """The numbers of one of our rows (percent), with the matched paper row's numbers and the differences."""
    key = result.spec.paper_row_key
    paper_row = table.row(result.spec.dataset, key) if key else None
    out: dict[str, Any] = {"num_folds": result.num_folds, "num_samples": int(result.pooled["num_samples"])}
    for m in ("uar", "war", "weighted_f1"):
        out[f"{m}_mean"] = _r(pct(result.mean(m)))
        out[f"{m}_std"] = _r(pct(result.std(m)))
        out[f"{m}_pooled"] = _r(pct(result.pooled_value(m)))
    if paper_row is not None:
        out["paper_row"] = paper_row.key
        for m in ("uar", "war"):
            p = paper_row.metric(m)
            out[f"paper_{m}"] = p
            out[f"{m}_diff"] = _r(diff(pct(result.mean(m)), p))
            out[f"{m}_pooled_diff"] = _r(diff(pct(result.pooled_value(m)), p))
    out["per_fold"] = {f.name: {"uar": _r(pct(f.metrics["uar"])), "war": _r(pct(f.metrics["war"])),
                                "num_samples": int(f.labels.size)} for f in result.folds}
    out["per_class_mean"] = {c: _r(pct(v)) for c, v in result.per_class_mean.items()}
    out["per_class_pooled"] = {c: _r(pct(v)) for c, v in result.pooled["per_class_recall"].items()}
    return _drop_none(out)


def table_metrics(table: PaperTable, results: Sequence[RowResult], profile: str) -> dict[str, Any]:
    """The ``metrics.json`` content of a table: every row's numbers, by row key and dataset."""
    rows: dict[str, dict[str, Any]] = {}
    for r in results:
        rows.setdefault(r.spec.key, {})[r.spec.dataset] = row_metrics(r, table)
    return {"table": table.name, "profile": profile, "unit": "percent", "rows": rows}


def write_metrics_json(path: str | Path, table: PaperTable, results: Sequence[RowResult], profile: str) -> Path:
    """Write a table's ``metrics.json`` (DVC ``metrics:``) at ``path``; returns the path."""
    path = Path(path)
    write_json_atomic(path, table_metrics(table, results, profile))
    return path


def confusion_file_name(result: RowResult) -> str:
    """``<row>-<dataset>.csv``, with characters unsafe in a file name replaced by ``_``."""
    stem = re.sub(r"[^\w.-]", "_", f"{result.spec.key}-{result.spec.dataset}")
    return f"{stem}.csv"


def write_confusion_csv(path: str | Path, result: RowResult) -> Path:
    """``actual,predicted`` class names, one line per test clip of every fold (pooled)."""
    names = result.class_names
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CONFUSION_COLUMNS)
    for fold in result.folds:
        writer.writerows((names[int(y)], names[int(p)]) for y, p in zip(fold.labels, fold.preds, strict=True))
    path = Path(path)
    write_text_atomic(path, buf.getvalue())
    return path


CURVES_DIR = "curves"
CURVE_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "val_uar", "val_war")
_HISTORY_KEYS = {"train_loss": "train/loss", "val_uar": "val/uar", "val_war": "val/war"}


def write_curves_csv(path: str | Path, history: Sequence[dict[str, Any]]) -> Path:
    """A fold's fine-tuning history (``history.json`` records) as ``epoch,train_loss,val_uar,val_war``.

    UAR and WAR in percent; an epoch without validation has empty cells. DVC plots the file
    (``x: epoch``), one line per fold and experiment.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CURVE_COLUMNS)
    for rec in sorted(history, key=lambda r: r.get("epoch", 0)):
        loss, uar, war = (rec.get(_HISTORY_KEYS[k]) for k in CURVE_COLUMNS[1:])
        writer.writerow([rec.get("epoch", ""), "" if loss is None else _r(loss),
                         "" if uar is None else _r(pct(uar)), "" if war is None else _r(pct(war))])
    path = Path(path)
    write_text_atomic(path, buf.getvalue())
    return path
