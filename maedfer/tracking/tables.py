"""Log an aggregated table to MLflow: one parent run per (table, profile), one child run per fold.

Layout (experiment ``maedfer-tables`` unless overridden; store from ``MLFLOW_TRACKING_URI`` or the
project default of :func:`maedfer.tracking.store.default_tracking_uri`)::

    maedfer-tables
    └── table5                      parent: tags table, profile, maedfer.group=<table>:<profile>;
        │                           metrics <row>/<dataset>/{uar,war}_{mean,std,pooled} (0..1);
        │                           artifacts: the table files (md, csv, tex, metrics.json, confusion/)
        ├── mae_dfer/dfew/fold1     child: tags table, profile, row, paper_row, dataset, fold, source_run
        │                           (the fold run folder), training_run_id (when the folder names it);
        │                           metrics test/uar, test/war, test/weighted_f1 (0..1, as in training runs)
        └── ...

Re-running the aggregation of the same table and profile REUSES the parent run (found by its
``maedfer.group`` tag, so its id and links stay stable): its previous child runs are deleted (MLflow's
soft delete: ``mlflow runs restore`` brings one back, ``mlflow gc`` purges them), the new fold runs
are logged, the artifacts are overwritten and the summary metrics get a new latest value.

Tracking never fails the stage: every store access is bounded and a broken or unreachable store
costs one warning (see :mod:`maedfer.tracking.tracker`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maedfer.tracking.metadata import run_tags
from maedfer.tracking.runs import delete_child_runs, find_or_create_parent_run
from maedfer.tracking.store import default_tracking_uri
from maedfer.tracking.tracker import Tracker

if TYPE_CHECKING:
    from maedfer.results.collect import RowResult

logger = logging.getLogger("maedfer.tracking")  # one logger for the package: one switch, one name in warnings

TABLES_EXPERIMENT = "maedfer-tables"
FOLD_METRICS: tuple[str, ...] = ("uar", "war", "weighted_f1")


def parent_group(table: str, profile: str) -> str:
    """The ``maedfer.group`` tag of a table's parent run: ``<table>:<profile>``."""
    return f"{table}:{profile}"


def fold_run_name(result: RowResult, fold: int) -> str:
    """A fold run's name: ``<row>/<dataset>/fold<k>``."""
    return f"{result.spec.key}/{result.spec.dataset}/fold{fold}"


def summary_metrics(results: Sequence[RowResult]) -> dict[str, float]:
    """``<row>/<dataset>/<metric>_{mean,std,pooled}`` in 0..1, for the parent run."""
    out: dict[str, float] = {}
    for r in results:
        prefix = f"{r.spec.key}/{r.spec.dataset}"
        for m in ("uar", "war"):
            out[f"{prefix}/{m}_mean"] = r.mean(m)
            out[f"{prefix}/{m}_std"] = r.std(m)
            out[f"{prefix}/{m}_pooled"] = r.pooled_value(m)
    return out


def log_table_runs(
    table: str,
    profile: str,
    results: Sequence[RowResult],
    artifacts: Sequence[Path] = (),
    artifact_dirs: Mapping[str, Path] | None = None,
    experiment: str = TABLES_EXPERIMENT,
    tracking_uri: str | None = None,
    enabled: bool = True,
    extra_tags: Mapping[str, Any] | None = None,
) -> str | None:
    """Log (or re-log) the table's parent run and its fold runs; returns the parent run id, or None."""
    if not enabled:
        return None
    uri = tracking_uri or default_tracking_uri()
    tags = {"table": table, "profile": profile, "stage": "aggregate", **(extra_tags or {})}
    parent = find_or_create_parent_run(experiment, group=parent_group(table, profile), run_name=table, tags=tags,
                                       tracking_uri=uri)
    if parent is None:
        return None
    removed = delete_child_runs(experiment, parent, uri)
    if removed is None:
        return None
    if removed:
        logger.info("MLflow: replaced %d earlier fold runs of %s (%s)", removed, table, profile)
    num_children = 0
    for r in results:
        for fold in r.folds:
            child_tags = run_tags(dataset=r.spec.dataset, fold=fold.fold, table=table, profile=profile,
                                  row=r.spec.key, paper_row=r.spec.paper_row_key,
                                  source_run=str(fold.folder.resolve()), training_run_id=fold.training_run_id)
            with Tracker(experiment, run_name=fold_run_name(r, fold.fold), parent_run_id=parent, tags=child_tags,
                         tracking_uri=uri) as tr:
                tr.log_metrics({f"test/{m}": fold.metrics[m] for m in FOLD_METRICS}, step=0)
            if tr.disabled_reason is not None:
                return None
            num_children += 1
    with Tracker(experiment, run_id=parent, tracking_uri=uri,
                 tags={**tags, "num_fold_runs": num_children,
                       "rows": ",".join(f"{r.spec.key}:{r.spec.dataset}" for r in results)}) as tr:
        tr.log_metrics(summary_metrics(results), step=0)
        for path in artifacts:
            tr.log_artifact(path)
        for name, folder in (artifact_dirs or {}).items():
            tr.log_artifact(folder, artifact_path=name)
    if tr.disabled_reason is not None:
        return None
    from maedfer.tracking.ui import log_row_means  # each row's fold means on its training parent run (issue 16.3)

    log_row_means(results, table, tracking_uri=uri)
    return parent
