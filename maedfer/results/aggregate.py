"""The aggregation stage: per-fold run folders -> the paper's table with our rows, files and MLflow runs.

    rows = [parse_row_arg("mae_dfer:dfew:runs/dfew/fold1,runs/dfew/fold2")]
    out = aggregate_table("table5", rows, "results/tables/table5", profile="demo")

Row argument: ``KEY[=PAPER_KEY]:DATASET:FOLD[,FOLD...]``. ``KEY`` names our row (unique per dataset
in the table); it is compared with the paper row ``PAPER_KEY`` (default ``KEY``; ``none`` for a row
without a paper counterpart). Each ``FOLD`` is a fold run folder or its ``metrics.json``.
A JSON spec holds the same: ``{"table": ..., "profile": ..., "experiment": ..., "rows": [{"key": ...,
"dataset": ..., "folds": [...], "paper_key": ...}]}``.

Files written to ``out_dir`` (each atomically): ``<table>.md``, ``<table>.csv``, ``<table>.tex``;
for tables with per-class numbers (5-7 via 12-14, or 12-14 themselves) ``<table>_per_class.{md,csv,tex}``;
``<table>.html`` (every view rendered as an HTML table: the Snakemake report shows it);
``metrics.json`` (DVC metrics), ``confusion/<row>-<dataset>.csv`` (DVC confusion plots) and
``curves/<row>-<dataset>-fold<k>.csv`` (each fold's history.json: DVC training-curve plots).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maedfer.io_utils import write_text_atomic
from maedfer.results.collect import ResultsInputError, RowResult, RowSpec, aggregate_row
from maedfer.results.dvc_files import (
    CONFUSION_DIR,
    CURVES_DIR,
    confusion_file_name,
    curves_file_name,
    write_confusion_csv,
    write_curves_csv,
    write_metrics_json,
)
from maedfer.results.paper import PaperTable, load_paper_tables
from maedfer.results.render import to_csv, to_html, to_latex, to_markdown
from maedfer.results.tables import FULL_PROFILE, TableView, build_main_view, build_per_class_view
from maedfer.tracking import TABLES_EXPERIMENT, log_table_runs

logger = logging.getLogger(__name__)

NO_PAPER_ROW = "none"
METRICS_JSON = "metrics.json"


@dataclass
class AggregateOutputs:
    """What an aggregation wrote: the table, its folder, the files and the row results."""
    table: str
    out_dir: Path
    files: list[Path]
    results: list[RowResult]
    parent_run_id: str | None = None
    confusion_files: dict[str, Path] = field(default_factory=dict)  # "<row>:<dataset>" -> csv

    def summary(self) -> dict[str, Any]:
        """Mean and std of UAR and WAR per row and dataset, as JSON-ready values."""
        rows: dict[str, dict[str, Any]] = {}
        for r in self.results:
            rows.setdefault(r.spec.key, {})[r.spec.dataset] = {
                "num_folds": r.num_folds, "uar_mean": round(100 * r.mean("uar"), 2),
                "war_mean": round(100 * r.mean("war"), 2), "uar_pooled": round(100 * r.pooled_value("uar"), 2),
                "war_pooled": round(100 * r.pooled_value("war"), 2)}
        return {"table": self.table, "out": str(self.out_dir), "rows": rows, "mlflow_parent_run": self.parent_run_id}


def parse_row_arg(text: str) -> RowSpec:
    """``KEY[=PAPER_KEY]:DATASET:FOLD[,FOLD...]`` -> :class:`RowSpec` (fold paths may contain ':')."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise ResultsInputError(f"--row {text!r}: expected KEY[=PAPER_KEY]:DATASET:FOLD_DIR[,FOLD_DIR...], e.g. "
                                "mae_dfer:dfew:runs/dfew/fold1,runs/dfew/fold2")
    key_part, dataset, folds = (p.strip() for p in parts)
    folds_list = [f.strip() for f in folds.split(",") if f.strip()]
    return make_row_spec(key_part, dataset, folds_list)


def make_row_spec(key_part: str, dataset: str, folds: Sequence[str | Path], paper_key: str | None = None) -> RowSpec:
    """A row spec from ``key[=paper_key]``, a dataset and the row's fold run folders."""
    key, _, pk = key_part.partition("=")
    paper = pk or paper_key
    if not key:
        raise ResultsInputError(f"row {key_part!r}: empty row key")
    if not folds:
        raise ResultsInputError(f"row {key} ({dataset}): no fold run folders given")
    compare = (paper or "").lower() != NO_PAPER_ROW
    return RowSpec(key=key, dataset=dataset.lower(), folds=tuple(Path(f) for f in folds),
                   paper_key=paper if compare else None, compare=compare)


def load_spec(path: str | Path) -> dict[str, Any]:
    """Read a JSON spec: ``table``, ``profile``, ``experiment`` (optional) and ``rows``."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsInputError(f"{path}: spec file not found; fix the --spec path") from None
    except json.JSONDecodeError as e:
        raise ResultsInputError(f"{path}: not valid JSON ({e.msg}, line {e.lineno}); fix the spec") from None
    if not isinstance(spec, Mapping) or not isinstance(spec.get("rows", []), list):
        raise ResultsInputError(f"{path}: expected an object with a 'rows' list; fix the spec")
    rows = []
    for i, r in enumerate(spec.get("rows", [])):
        if not isinstance(r, Mapping) or not {"key", "dataset", "folds"} <= set(r):
            raise ResultsInputError(f"{path}: rows[{i}] needs key, dataset and folds; fix the spec")
        folds = r["folds"] if isinstance(r["folds"], list) else [r["folds"]]
        rows.append(make_row_spec(str(r["key"]), str(r["dataset"]), folds, paper_key=r.get("paper_key")))
    return {**spec, "rows": rows}


def _paper_table(name: str, rows: Sequence[RowSpec] = ()) -> PaperTable:
    paper = load_paper_tables()
    if name not in paper:
        if rows and all(r.paper_row_key is None for r in rows):
            # a table over the user's own dataset(s): no published numbers beside ours
            return PaperTable(name=name, title=f"{name} (own data)", sections={r.dataset: () for r in rows})
        raise ResultsInputError(f"--table {name!r}: no such paper table; known: {', '.join(paper.tables)} (a table "
                                "of your own data takes rows without a paper counterpart: --row KEY=none:...)")
    return paper[name]


def build_views(table: PaperTable, results: Sequence[RowResult], profile: str) -> list[TableView]:
    """The table's views: the main one, and per-class views where the paper has them."""
    paper = load_paper_tables()
    views = []
    if table.classes:  # Tables 12-14 themselves
        views.append(build_per_class_view(table, results, paper, profile, name=table.name))
    else:
        views.append(build_main_view(table, results, paper, profile))
        if table.per_class_table:
            pc_table = paper[table.per_class_table]
            views.append(build_per_class_view(pc_table, results, paper, profile, name=f"{table.name}_per_class",
                                              summary=table))
    return views


def write_views(views: Sequence[TableView], out_dir: Path) -> list[Path]:
    """Write every view as Markdown, CSV and LaTeX into ``out_dir``, and all of them as one HTML page."""
    files = []
    for view in views:
        for suffix, render in ((".md", to_markdown), (".csv", to_csv), (".tex", to_latex)):
            path = out_dir / f"{view.name}{suffix}"
            write_text_atomic(path, render(view))
            files.append(path)
    if views:  # <table>.html: the main table and its per-class companion, rendered (Snakemake report)
        path = out_dir / f"{views[0].name}.html"
        write_text_atomic(path, to_html(list(views)))
        files.append(path)
    return files


def write_curves(results: Sequence[RowResult], out_dir: Path) -> list[Path]:
    """``curves/<row>-<dataset>-fold<k>.csv`` from each fold folder's ``history.json`` (where there is one)."""
    written = []
    for r in results:
        for fold in r.folds:
            history = fold.folder / "history.json"
            if not history.is_file():
                continue
            try:
                records = json.loads(history.read_text())
            except json.JSONDecodeError as exc:
                raise ResultsInputError(f"{history}: not valid JSON ({exc.msg}); re-run the fine-tuning") from exc
            if not isinstance(records, list) or not all(isinstance(x, dict) for x in records):
                raise ResultsInputError(f"{history}: expected a list of per-epoch records; re-run the fine-tuning")
            written.append(write_curves_csv(out_dir / CURVES_DIR / curves_file_name(r.spec.key, r.spec.dataset,
                                                                                     fold.fold), records))
    (out_dir / CURVES_DIR).mkdir(exist_ok=True)  # a declared output, also when no fold has a history
    for stale in set((out_dir / CURVES_DIR).glob("*.csv")) - set(written):
        stale.unlink()
    return written


def aggregate_table(
    table: str,
    rows: Sequence[RowSpec],
    out_dir: str | Path,
    profile: str = FULL_PROFILE,
    experiment: str = TABLES_EXPERIMENT,
    tracking: bool = True,
    tracking_uri: str | None = None,
) -> AggregateOutputs:
    """Aggregate our rows, write the table files and log the MLflow runs (see the module docstring)."""
    paper_table = _paper_table(table, rows)
    if not rows:
        raise ResultsInputError(f"{table}: no rows given; pass --row KEY:DATASET:FOLD_DIR[,...] at least once")
    results = [aggregate_row(spec) for spec in rows]
    views = build_views(paper_table, results, profile)  # checks datasets, keys and classes before writing
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = write_views(views, out)
    files.append(write_metrics_json(out / METRICS_JSON, paper_table, results, profile))
    confusion = {f"{r.spec.key}:{r.spec.dataset}": write_confusion_csv(out / CONFUSION_DIR / confusion_file_name(r), r)
                 for r in results}
    for stale in set((out / CONFUSION_DIR).glob("*.csv")) - set(confusion.values()):
        stale.unlink()  # a row of an earlier aggregation into this folder
    write_curves(results, out)
    for r in results:
        logger.info("%s %s (%s): UAR %.2f ± %.2f, WAR %.2f ± %.2f over %d folds; pooled UAR %.2f, WAR %.2f", table,
                    r.spec.key, r.spec.dataset, 100 * r.mean("uar"), 100 * r.std("uar"), 100 * r.mean("war"),
                    100 * r.std("war"), r.num_folds, 100 * r.pooled_value("uar"), 100 * r.pooled_value("war"))
    parent = log_table_runs(table, profile, results, artifacts=files,
                            artifact_dirs={CONFUSION_DIR: out / CONFUSION_DIR} if confusion else None,
                            experiment=experiment, tracking_uri=tracking_uri, enabled=tracking)
    return AggregateOutputs(table, out, files, results, parent, confusion)
