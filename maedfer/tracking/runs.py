"""Parent runs: one per group of child runs, found again by its ``maedfer.group`` tag; removing its children.

Every store access runs bounded in time (:func:`maedfer.tracking.store.run_bounded`); a broken or
unreachable store costs one warning and the function returns None.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from maedfer.tracking.metadata import GROUP_TAG, PARENT_RUN_TAG, ROLE_TAG, code_tags
from maedfer.tracking.records import clean_tags, flatten_params, log_new_params
from maedfer.tracking.store import (
    connect,
    default_artifact_root,
    default_tracking_uri,
    experiment_id,
    run_bounded,
    store_lock,
)

logger = logging.getLogger("maedfer.tracking")  # one logger for the package: one switch, one name in warnings


def find_or_create_parent_run(
    experiment: str,
    group: str,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    tracking_uri: str | None = None,
    enabled: bool = True,
    timeout_s: float = 60.0,
) -> str | None:
    """Id of the parent run tagged ``maedfer.group=<group>`` in ``experiment``, created if missing.

    Returns None (after one warning) when tracking does not work; children then run unnested.
    A new parent is left FINISHED; log fold aggregates to it later with ``Tracker(run_id=...)``.
    """
    if not enabled:
        return None
    uri = tracking_uri or default_tracking_uri()
    safe_group = str(group).replace("'", "_")

    def work() -> str:
        client = connect(uri, probe_timeout_s=min(5.0, timeout_s))
        with store_lock(uri):
            exp_id = experiment_id(client, experiment, default_artifact_root(uri))
            found = client.search_runs(
                [exp_id],
                filter_string=f"tags.`{GROUP_TAG}` = '{safe_group}' and tags.`{ROLE_TAG}` = 'parent'",
                max_results=1,
                order_by=["attributes.start_time ASC"],
            )
            if found:
                return found[0].info.run_id
            all_tags = {
                **code_tags(),
                **{k: str(v) for k, v in (tags or {}).items()},
                GROUP_TAG: safe_group,
                ROLE_TAG: "parent",
            }
            run = client.create_run(exp_id, run_name=run_name or safe_group, tags=clean_tags(all_tags))
            log_new_params(client, run.info.run_id, flatten_params(params or {}))
            client.set_terminated(run.info.run_id, "FINISHED")
            return run.info.run_id

    run_id, error = run_bounded(work, timeout_s, "mlflow-parent-run")
    if error:
        logger.warning("MLflow tracking disabled for the parent run of %r (store %s): %s", group, uri, error)
        return None
    return run_id


def delete_child_runs(experiment: str, parent_run_id: str, tracking_uri: str, timeout_s: float = 60.0) -> int | None:
    """Soft-delete the runs whose parent is ``parent_run_id``; their count, or None (one warning) on failure."""

    def work() -> int:
        client = connect(tracking_uri, probe_timeout_s=min(5.0, timeout_s))
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return 0
        ids: list[str] = []
        token = None
        while True:
            page = client.search_runs([exp.experiment_id], filter_string=f"tags.`{PARENT_RUN_TAG}` = '{parent_run_id}'",
                                      max_results=1000, page_token=token)
            ids += [r.info.run_id for r in page]
            token = page.token
            if not token:
                break
        for run_id in ids:
            client.delete_run(run_id)
        return len(ids)

    count, error = run_bounded(work, timeout_s, "mlflow-delete-children")
    if error:
        logger.warning("MLflow: could not remove the previous fold runs of parent %s (store %s): %s; "
                       "no new runs are logged, to avoid duplicates", parent_run_id, tracking_uri, error)
        return None
    return int(count)
