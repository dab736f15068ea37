"""Log figure files as the artifacts of one MLflow run (the ``figures`` stage)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maedfer.tracking.metadata import ROLE_TAG
from maedfer.tracking.tracker import Tracker

logger = logging.getLogger("maedfer.tracking")  # one logger for the package: one switch, one name in warnings


def log_figures(experiment: str | None, run_name: str, paths: Sequence[str | Path],
                params: dict[str, Any] | None = None) -> None:
    """Log figure files under ``figures/`` of a new run tagged ``maedfer.role=figure``; no-op without ``experiment``.

    Any tracking failure only logs a warning: tracking never fails a figure.
    """
    if not experiment:
        return
    try:
        with Tracker(experiment, run_name=run_name, params=params or {}, tags={ROLE_TAG: "figure"}) as tracker:
            for p in paths:
                tracker.log_artifact(p, artifact_path="figures")
    except Exception as exc:  # noqa: BLE001 - tracking must never fail a figure
        logger.warning("MLflow logging of %s skipped: %s", run_name, exc)
