"""File names shared by the aggregate stage and the plan that declares them (no heavy imports: the Snakefile)."""

from __future__ import annotations

import re


def curves_file_name(row: str, dataset: str, fold: int | str) -> str:
    """``<row>-<dataset>-fold<k>.csv`` (a table's ``curves/`` folder; dvc.yaml's ``plots:`` name the same files)."""
    return re.sub(r"[^\w.-]", "_", f"{row}-{dataset}") + f"-fold{fold}.csv"
