"""Our evaluation of the authors' released fine-tuned checkpoints, fold by fold, beside their own numbers.

    write_released_table("dfew", {1: "runs/paper/evaluate_released/dfew/fold1", ...}, "results/paper/released/dfew")

The authors' per-fold numbers are in ``released_results.yaml`` (shipped with the package, from their
README); the paper's published number (the fold mean) comes from ``paper_tables.yaml``. Each fold line
gives our UAR/WAR, theirs and the difference ours minus theirs, in points; a mean line follows, then
the paper's row. The same checkpoint on the same clips should give the same numbers: a difference
comes from the data copy (face crops, frames, resizing) or from the evaluation protocol.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from maedfer.io_utils import write_json_atomic, write_text_atomic
from maedfer.results.collect import ResultsInputError, read_fold
from maedfer.results.paper import load_paper_tables
from maedfer.results.render import to_csv, to_markdown
from maedfer.results.tables import Line, Section, TableView, ViewColumn, fmt

RELEASED_RESULTS_FILE = "released_results.yaml"
CAPTION = ("Ours: the authors' released fine-tuned checkpoint of each fold evaluated on this data copy with the "
           "2-clip test (python -m pipeline.evaluate). Authors: the numbers their README lists for the same "
           "checkpoint. Δ = ours − authors, in points; a difference comes from the data (face crops, frames, "
           "resizing) or the evaluation, not from training.")
_COLUMNS = [ViewColumn("fold", "Fold"), ViewColumn("uar", "UAR (ours)", True), ViewColumn("war", "WAR (ours)", True),
            ViewColumn("uar_authors", "UAR (authors)", True), ViewColumn("war_authors", "WAR (authors)", True),
            ViewColumn("d_uar", "Δ UAR", True), ViewColumn("d_war", "Δ WAR", True),
            ViewColumn("clips", "Test clips", True)]
_CSV = ["dataset", "fold", "uar", "war", "uar_authors", "war_authors", "d_uar", "d_war", "clips"]


@functools.lru_cache(maxsize=1)
def load_released_results() -> dict[str, Any]:
    """The packaged ``released_results.yaml``: dataset -> {paper, note?, folds: {k: {uar, war}}}."""
    text = resources.files("maedfer.results").joinpath(RELEASED_RESULTS_FILE).read_text(encoding="utf-8")
    data = yaml.safe_load(text)["datasets"]
    return {ds: {**spec, "folds": {int(k): v for k, v in spec["folds"].items()}} for ds, spec in data.items()}


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _line(kind: str, label: str, ours: Mapping[str, float | None], theirs: Mapping[str, Any] | None,
          clips: int | None, dataset: str) -> Line:
    theirs = theirs or {}
    record = {"dataset": dataset, "fold": label, "uar": ours.get("uar"), "war": ours.get("war"),
              "uar_authors": theirs.get("uar"), "war_authors": theirs.get("war"),
              "d_uar": _diff(ours.get("uar"), theirs.get("uar")), "d_war": _diff(ours.get("war"), theirs.get("war")),
              "clips": clips}
    cells = {"fold": label, "clips": "-" if clips is None else str(clips)}
    cells.update({k: fmt(record[k], signed=k.startswith("d_")) for k in ("uar", "war", "uar_authors", "war_authors",
                                                                          "d_uar", "d_war")})
    return Line(kind=kind, cells=cells, record=record)  # type: ignore[arg-type]


def released_view(dataset: str, fold_runs: Mapping[int, str | Path]) -> tuple[TableView, dict[str, Any]]:
    """The table view of our fold evaluations beside the authors' numbers, and its metrics (percent)."""
    reference = load_released_results().get(dataset, {})
    ref_folds = reference.get("folds", {})
    section = Section(dataset=dataset, title=load_paper_tables().dataset_title(dataset))
    metrics: dict[str, Any] = {"dataset": dataset, "folds": {}}
    ours_all: dict[str, list[float]] = {"uar": [], "war": []}
    for k in sorted(fold_runs):
        fold = read_fold(fold_runs[k], position=k)
        ours = {m: 100.0 * float(fold.metrics[m]) for m in ("uar", "war")}
        for m in ours_all:
            ours_all[m].append(ours[m])
        section.lines.append(_line("ours", f"fold {k}", ours, ref_folds.get(k), len(fold.labels), dataset))
        metrics["folds"][f"fold{k}"] = {**ours, "authors": ref_folds.get(k), "clips": len(fold.labels)}
    if not fold_runs:
        raise ResultsInputError(f"no fold evaluation given for {dataset}; pass --fold-run K:FOLDER")
    mean = {m: sum(v) / len(v) for m, v in ours_all.items()}
    covered = [ref_folds[k] for k in fold_runs if k in ref_folds]
    ref_mean = ({m: sum(r[m] for r in covered) / len(covered) for m in ("uar", "war")}
                if len(covered) == len(fold_runs) else None)
    section.lines.append(_line("ours", f"mean of {len(fold_runs)}", mean, ref_mean, None, dataset))
    metrics["mean"] = {**mean, "authors": ref_mean}
    captions = [CAPTION]
    if "paper" in reference:
        table = load_paper_tables()[reference["paper"]["table"]]
        row = table.row(dataset, reference["paper"]["row"])
        if row is not None:
            paper = {"uar": row.uar, "war": row.war}
            section.lines.append(_line("paper", f"paper ({table.display_name})", mean, paper, None, dataset))
            metrics["paper"] = paper
    if note := reference.get("note"):
        captions.append(note)
    if not reference:
        captions.append(f"The authors list no numbers for {dataset} (maedfer/results/{RELEASED_RESULTS_FILE}).")
    view = TableView(name=f"released_{dataset}", heading=f"Released checkpoints on {section.title}",
                     captions=captions, columns=_COLUMNS, sections=[section], csv_columns=_CSV)
    return view, metrics


def write_released_table(dataset: str, fold_runs: Mapping[int, str | Path], out_dir: str | Path) -> list[Path]:
    """Write ``released_<dataset>.md``, ``.csv`` and ``metrics.json`` into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    view, metrics = released_view(dataset, fold_runs)
    paths = [out / f"{view.name}.md", out / f"{view.name}.csv", out / "metrics.json"]
    write_text_atomic(paths[0], to_markdown(view))
    write_text_atomic(paths[1], to_csv(view))
    write_json_atomic(paths[2], json.loads(json.dumps(metrics)))
    return paths
