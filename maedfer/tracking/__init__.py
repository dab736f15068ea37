"""MLflow tracking that never blocks or crashes a stage: store, queued run, parent runs, tables, figures.

* :mod:`~maedfer.tracking.store`: the store URI (``MLFLOW_TRACKING_URI`` or ``sqlite:///<cwd>/mlflow.db``,
  artifacts in ``<db folder>/mlruns``), connecting, the sqlite lock, calls bounded in time.
* :mod:`~maedfer.tracking.records`: MLflow's limits, clean names, flattened params.
* :mod:`~maedfer.tracking.metadata`: tag names, :func:`run_tags`, the code's git commit and state.
* :mod:`~maedfer.tracking.tracker`: :class:`Tracker`, one run whose records a background thread sends.
* :mod:`~maedfer.tracking.runs`: parent runs found again by their ``maedfer.group`` tag; removing children.
* :mod:`~maedfer.tracking.tables`: an aggregated table as a parent run with one child run per fold.
* :mod:`~maedfer.tracking.figures`: figure files as the artifacts of one run.

Layout: one experiment per dataset (e.g. ``maedfer-finetune-dfew``), one parent run per
group of folds (:func:`find_or_create_parent_run`, found again by its ``maedfer.group`` tag), one
child run per fold (``parent_run_id``). Only rank 0 should track: pass ``enabled=dist.is_main``.
Warnings of every module go to the logger ``maedfer.tracking``.

    parent = find_or_create_parent_run("maedfer-finetune-dfew", group="dfew-lgi-v1")
    with Tracker("maedfer-finetune-dfew", run_name="fold1", parent_run_id=parent,
                 tags=run_tags(dataset="dfew", fold=1, index_checksum=sha), params=cfg) as tr:
        tr.log_metrics({"train/loss": 1.2, "lr": 1e-3}, step=100)
        tr.log_artifact("runs/dfew/fold1/metrics.json")
"""

from maedfer.tracking.figures import log_figures
from maedfer.tracking.metadata import GROUP_TAG, PARENT_RUN_TAG, ROLE_TAG, code_tags, git_commit, git_dirty, run_tags
from maedfer.tracking.records import (
    MAX_KEY_LENGTH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VALUE_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VALUE_LENGTH,
    clean_key,
    flatten_params,
)
from maedfer.tracking.runs import delete_child_runs, find_or_create_parent_run
from maedfer.tracking.store import connect, default_tracking_uri, run_bounded
from maedfer.tracking.tables import TABLES_EXPERIMENT, log_table_runs, summary_metrics
from maedfer.tracking.tracker import Tracker

__all__ = [
    "GROUP_TAG",
    "MAX_KEY_LENGTH",
    "MAX_METRICS_PER_BATCH",
    "MAX_PARAMS_TAGS_PER_BATCH",
    "MAX_PARAM_VALUE_LENGTH",
    "MAX_TAG_VALUE_LENGTH",
    "PARENT_RUN_TAG",
    "ROLE_TAG",
    "TABLES_EXPERIMENT",
    "Tracker",
    "clean_key",
    "code_tags",
    "connect",
    "default_tracking_uri",
    "delete_child_runs",
    "find_or_create_parent_run",
    "flatten_params",
    "git_commit",
    "git_dirty",
    "log_figures",
    "log_table_runs",
    "run_bounded",
    "run_tags",
    "summary_metrics",
]
