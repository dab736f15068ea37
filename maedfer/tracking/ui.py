"""What MLflow 3's web UI shows for maedfer's experiments: the model-training view, DFER columns, fold means.

* :func:`tag_training_experiment` tags an experiment ``mlflow.experimentKind=custom_model_development``
  (the tag the UI's experiment-type selector writes) and stores a saved view of the runs table, "DFER",
  with the columns a DFER user wants: dataset, fold, UAR, WAR, epochs (an experiment tag
  ``mlflow.sharedViewState.maedfer-dfer``, the format of the UI's *Save view*; it appears under *Views*).
* :func:`training_view_url` is the link that opens the runs table with that view. MLflow 3.17's UI picks
  the GenAI or the model-training layout by its sidebar switch (remembered by the browser, GenAI the first
  time) and by the link's ``workflowType`` query; the experiment tag is what older 3.x UIs and the selector
  use. So the link carries ``workflowType=machine_learning``: the model-training view whatever the browser
  remembered. MLflow has no server setting for the runs table's default columns; the saved view is the
  nearest real thing.
* :func:`log_fold_means` puts the fold-mean UAR/WAR on a parent run as ``test/uar`` and ``test/war`` (the
  fold runs' names), so parent runs (table rows) line up in the compare view and in the same columns.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger("maedfer.tracking")

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"  # the UI's "Machine learning" experiment type
VIEW_TAG_PREFIX = "mlflow.sharedViewState."  # the UI's saved views (experiment tags)
VIEW_ID = "maedfer-dfer"
VIEW_NAME = "DFER"
WORKFLOW_QUERY = "workflowType=machine_learning"
# Runs-table column keys as the UI names them: <params|metrics|tags|attributes>.`<key>`.
DFER_COLUMNS: tuple[str, ...] = (
    "tags.`dataset`",
    "tags.`fold`",
    "metrics.`test/uar`",
    "metrics.`test/war`",
    "params.`epochs`",
)


def view_state(columns: Sequence[str] = DFER_COLUMNS) -> dict[str, Any]:
    """The runs table's state of the saved view: these columns, best UAR first, every run shown."""
    return {
        "selectedColumns": list(columns),
        "columnOrder": [],
        "orderByKey": "metrics.`test/uar`",
        "orderByAsc": False,
        "runsHiddenMode": "SHOW_ALL",
    }


def view_tag_value(name: str = VIEW_NAME, columns: Sequence[str] = DFER_COLUMNS, now_ms: int = 0) -> str:
    """The saved view's tag value: ``{"name", "createdAt", "updatedAt", "state": <JSON text>}``."""
    return json.dumps({"name": name, "createdAt": now_ms, "updatedAt": now_ms,
                       "state": json.dumps(view_state(columns))})


def experiment_ui_tags(now_ms: int = 0) -> dict[str, str]:
    """The experiment tags: model-training kind and the DFER saved view."""
    return {EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND, f"{VIEW_TAG_PREFIX}{VIEW_ID}": view_tag_value(now_ms=now_ms)}


def tag_training_experiment(client: Any, experiment_id: str) -> None:
    """Set :func:`experiment_ui_tags` on an experiment (a kind the user chose in the UI is kept)."""
    import time

    exp = client.get_experiment(experiment_id)
    kind = exp.tags.get(EXPERIMENT_KIND_TAG)
    for key, value in experiment_ui_tags(int(time.time() * 1000)).items():
        if key == EXPERIMENT_KIND_TAG and kind:
            continue
        if key.startswith(VIEW_TAG_PREFIX) and key in exp.tags:
            continue  # the view exists (perhaps edited in the UI): leave it
        client.set_experiment_tag(experiment_id, key, value)


def training_view_url(server: str, experiment_id: str) -> str:
    """The runs table of ``experiment_id`` with the DFER view, in the model-training layout."""
    return (f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs"
            f"?viewStateShareKey={VIEW_ID}&{WORKFLOW_QUERY}")


def fold_mean_metrics(uar: Sequence[float], war: Sequence[float]) -> dict[str, float]:
    """``test/uar``, ``test/war`` (fold means, 0..1), their ``_std`` (population, 0 for one fold) and ``folds``."""
    if not uar or len(uar) != len(war):
        raise ValueError(f"fold means need one UAR and one WAR per fold, got {len(uar)} and {len(war)}")
    out: dict[str, float] = {"folds": float(len(uar))}
    for name, values in (("uar", uar), ("war", war)):
        out[f"test/{name}"] = statistics.fmean(values)
        out[f"test/{name}_std"] = statistics.pstdev(values)
    return out


def log_fold_means(client: Any, parent_run_id: str, uar: Sequence[float], war: Sequence[float]) -> dict[str, float]:
    """Log :func:`fold_mean_metrics` to the parent run (step 0, a new latest value on re-runs); returns them."""
    import time

    from mlflow.entities import Metric

    metrics = fold_mean_metrics(uar, war)
    ts = int(time.time() * 1000)
    client.log_batch(parent_run_id, metrics=[Metric(k, v, ts, 0) for k, v in metrics.items()])
    return metrics


def _training_parent(folds: Sequence[Any]) -> str | None:
    """The one parent run of the folds' training runs (their ``mlflow_run.json``), or None when not one."""
    parents = set()
    for fold in folds:
        path = Path(fold.folder) / "mlflow_run.json"
        try:
            parents.add(json.loads(path.read_text()).get("parent_run_id"))
        except (OSError, ValueError, AttributeError):
            return None
    return parents.pop() if len(parents) == 1 and None not in parents else None


def log_row_means(results: Sequence[Any], table: str, tracking_uri: str | None = None,
                  timeout_s: float = 120.0) -> int | None:
    """For each table row (a ``RowResult``), log its fold means to its folds' training parent run and tag it.

    The parent (one per fine-tuning of a dataset, in ``maedfer-finetune-<dataset>``) gets ``test/uar`` and
    ``test/war`` (fold means), tags ``table`` and ``row``; each fold's registered model versions get
    ``table_row``. Returns the number of parents updated; None (one warning) when the store fails.
    """
    from maedfer.tracking.models import tag_table_row
    from maedfer.tracking.store import connect, default_tracking_uri, run_bounded

    uri = tracking_uri or default_tracking_uri()

    def work() -> int:
        client = connect(uri, probe_timeout_s=min(5.0, timeout_s))
        done = 0
        for r in results:
            for fold in r.folds:
                if fold.training_run_id:
                    tag_table_row(client, fold.training_run_id, table, r.spec.key)
            parent = _training_parent(r.folds)
            if parent is None:
                continue
            log_fold_means(client, parent, [f.metrics["uar"] for f in r.folds], [f.metrics["war"] for f in r.folds])
            client.set_tag(parent, "table", table)
            client.set_tag(parent, "row", r.spec.key)
            done += 1
        return done

    count, error = run_bounded(work, timeout_s, "mlflow-row-means")
    if error:
        logger.warning("MLflow: fold means of table %s not logged to the training runs (store %s): %s",
                       table, uri, error)
        return None
    return count
