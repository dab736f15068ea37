"""Paper rows and our aggregated rows side by side, as format-neutral table views (see render.py).

The main view follows the paper's table: one section per dataset, the paper's rows in its order,
each of our rows right after the paper row it reproduces, with our fold mean (± sample std), our
pooled UAR/WAR and the difference ours (fold mean) minus paper, in points. The per-class view
(Tables 12-14) adds, per our row, a fold-mean line, a pooled line and a difference line.
All numbers in the views are percent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from maedfer.results.collect import ResultsInputError, RowResult
from maedfer.results.paper import PaperRow, PaperTable, PaperTables

LineKind = Literal["paper", "ours", "ours_pooled", "diff"]
FULL_PROFILE = "full"
DEMO_CAPTION = (
    "DEMO PROFILE: our rows come from a tiny model trained on the small synthetic demo dataset. They only show "
    "that the pipeline runs end to end; they are NOT a reproduction of the paper and must not be compared with it."
)
METHOD_CAPTION = (
    "Ours: UAR/WAR are the mean ± sample standard deviation over the folds (the authors' protocol: the published "
    "totals are fold means); pooled: all folds' test predictions pooled into one set (the protocol the paper's text "
    "describes); Δ = ours (fold mean) − paper, in points."
)


@dataclass(frozen=True)
class ViewColumn:
    """One column of a table view: key, header label and alignment."""
    key: str
    label: str
    numeric: bool = False


@dataclass
class Line:
    """One line of a table view: its display cells and its numbers for the CSV."""
    kind: LineKind
    cells: dict[str, str]  # column key -> display text
    record: dict[str, Any]  # flat numbers for the CSV
    underlined: frozenset[str] = frozenset()


@dataclass
class Section:
    """The lines of one dataset in a table view."""
    dataset: str
    title: str
    lines: list[Line] = field(default_factory=list)


@dataclass
class TableView:
    """A table ready to render: heading, captions, columns and sections."""
    name: str  # output file stem, e.g. "table5" or "table5_per_class"
    heading: str  # "Table 5: Results on DFEW."
    captions: list[str]
    columns: list[ViewColumn]
    sections: list[Section]
    csv_columns: list[str]


def pct(x: float | None) -> float | None:
    """A 0..1 metric in percent (None stays None)."""
    return None if x is None else 100.0 * float(x)


def fmt(x: float | None, signed: bool = False) -> str:
    """A percentage with two decimals ("-" for None)."""
    if x is None:
        return "-"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def fmt_compute(x: float | None) -> str:
    """#Params / FLOPs as the paper prints them: ``78`` (integer) or ``13.0`` (one decimal)."""
    if x is None:
        return "-"
    return str(x) if isinstance(x, int) else f"{x:.1f}"


def fmt_mean_std(mean: float, std: float, num_folds: int) -> str:
    """"mean ± std" over several folds, the mean alone for one."""
    return f"{mean:.2f} ± {std:.2f}" if num_folds > 1 else f"{mean:.2f}"


def diff(ours: float | None, paper: float | None) -> float | None:
    """``ours - paper`` (None when either is missing)."""
    return None if ours is None or paper is None else ours - paper


def fmt_setting(v: Any) -> str:
    """A setting as table text (✓ / × for booleans)."""
    if isinstance(v, bool):
        return "✓" if v else "×"
    return "" if v is None else str(v)


def profile_captions(profile: str) -> list[str]:
    """Captions saying how a profile's rows compare with the paper."""
    if profile == "demo":
        return [DEMO_CAPTION]
    if profile != FULL_PROFILE:
        return [f"Profile '{profile}': not the paper's full setting; our rows are not expected to match the paper."]
    return []


def our_label(result: RowResult) -> str:
    """The method label of one of our rows."""
    return f"Ours ({result.spec.key})"


def match_rows(table: PaperTable, results: Sequence[RowResult]) -> dict[tuple[str, str | None], list[RowResult]]:
    """Our rows grouped by (dataset, paper row key); checks datasets and paper keys exist."""
    out: dict[tuple[str, str | None], list[RowResult]] = {}
    seen: set[tuple[str, str]] = set()
    for r in results:
        ds, key, paper_key = r.spec.dataset, r.spec.key, r.spec.paper_row_key
        if ds not in table.sections:
            raise ResultsInputError(f"row {key}: {table.name} has no dataset {ds!r}; its datasets: "
                                    f"{', '.join(table.datasets)}")
        if (ds, key) in seen:
            raise ResultsInputError(f"row {key} ({ds}) is given twice for {table.name}; give each row once")
        seen.add((ds, key))
        if paper_key is not None and table.row(ds, paper_key) is None:
            raise ResultsInputError(f"row {key}: {table.name} ({ds}) has no paper row {paper_key!r}; known rows: "
                                    f"{', '.join(table.keys(ds))} (write KEY=none to add a row without a paper "
                                    "counterpart)")
        out.setdefault((ds, paper_key), []).append(r)
    return out


def _method_cell(row: PaperRow) -> str:
    return row.display_name + (" *" if row.derived else "")


def _paper_notes(table: PaperTable) -> list[str]:
    notes = [f"Paper: {table.caption}"] if table.caption else []
    if table.protocol:
        notes.append(f"Protocol (paper): {table.protocol}")
    if any(r.derived for rows in table.sections.values() for r in rows):
        notes.append("* not printed in the paper: derived from statements in its text (see the notes).")
    notes += [f"Note: {n}" for n in table.notes]
    return notes


def build_main_view(table: PaperTable, results: Sequence[RowResult], paper: PaperTables,
                    profile: str = FULL_PROFILE) -> TableView:
    """The paper's table with our rows inserted after the rows they reproduce."""
    matched = match_rows(table, results)
    settings = list(table.setting_columns)
    columns = [ViewColumn("dataset", "Dataset"), ViewColumn("method", "Method")]
    columns += [ViewColumn(f"setting_{c.key}", c.label) for c in settings]
    if table.has_compute:
        columns += [ViewColumn("params_m", "#Params (M)", True), ViewColumn("flops_g", "FLOPs (G)", True)]
    columns += [ViewColumn("uar", "UAR", True), ViewColumn("war", "WAR", True),
                ViewColumn("uar_pooled", "UAR (pooled)", True), ViewColumn("war_pooled", "WAR (pooled)", True),
                ViewColumn("uar_diff", "ΔUAR", True), ViewColumn("war_diff", "ΔWAR", True)]
    csv_columns = ["table", "profile", "dataset", "source", "row_key", "paper_row_key", "method"]
    csv_columns += [f"setting_{c.key}" for c in settings]
    csv_columns += ["params_m", "flops_g", "uar", "war", "uar_std", "war_std", "weighted_f1", "uar_pooled",
                    "war_pooled", "num_folds", "num_samples", "paper_uar", "paper_war", "uar_diff", "war_diff",
                    "uar_pooled_diff", "war_pooled_diff"]

    def paper_line(row: PaperRow) -> Line:
        cells = {"method": _method_cell(row), "uar": fmt(row.uar), "war": fmt(row.war)}
        cells.update({f"setting_{c.key}": fmt_setting(row.setting.get(c.key)) for c in settings})
        if table.has_compute:
            cells.update(params_m=fmt_compute(row.params_m), flops_g=fmt_compute(row.flops_g))
        record = {"source": "paper", "row_key": row.key, "paper_row_key": row.key, "method": row.display_name,
                  "params_m": row.params_m, "flops_g": row.flops_g, "uar": row.uar, "war": row.war,
                  **{f"setting_{c.key}": row.setting.get(c.key) for c in settings}}
        return Line("paper", cells, record, frozenset(row.underlined))

    def ours_line(r: RowResult, row: PaperRow | None) -> Line:
        n = r.num_folds
        uar, war = pct(r.mean("uar")), pct(r.mean("war"))
        uar_std, war_std = pct(r.std("uar")), pct(r.std("war"))
        uar_p, war_p = pct(r.pooled_value("uar")), pct(r.pooled_value("war"))
        p_uar, p_war = (row.uar, row.war) if row is not None else (None, None)
        cells = {"method": our_label(r), "uar": fmt_mean_std(uar, uar_std, n), "war": fmt_mean_std(war, war_std, n),
                 "uar_pooled": fmt(uar_p), "war_pooled": fmt(war_p),
                 "uar_diff": fmt(diff(uar, p_uar), signed=True) if p_uar is not None else "",
                 "war_diff": fmt(diff(war, p_war), signed=True) if p_war is not None else ""}
        if row is not None:
            cells.update({f"setting_{c.key}": fmt_setting(row.setting.get(c.key)) for c in settings})
        record = {"source": "ours", "row_key": r.spec.key, "paper_row_key": row.key if row else None,
                  "method": our_label(r), "uar": uar, "war": war, "uar_std": uar_std, "war_std": war_std,
                  "weighted_f1": pct(r.mean("weighted_f1")), "uar_pooled": uar_p, "war_pooled": war_p,
                  "num_folds": n, "num_samples": int(r.pooled["num_samples"]), "paper_uar": p_uar, "paper_war": p_war,
                  "uar_diff": diff(uar, p_uar), "war_diff": diff(war, p_war),
                  "uar_pooled_diff": diff(uar_p, p_uar), "war_pooled_diff": diff(war_p, p_war)}
        if row is not None:
            record.update({f"setting_{c.key}": row.setting.get(c.key) for c in settings})
        return Line("ours", cells, record)

    sections = []
    for ds, rows in table.sections.items():
        section = Section(ds, paper.dataset_title(ds))
        for row in rows:
            section.lines.append(paper_line(row))
            section.lines += [ours_line(r, row) for r in matched.get((ds, row.key), [])]
        section.lines += [ours_line(r, None) for r in matched.get((ds, None), [])]
        for line in section.lines:
            line.record.update(table=table.name, profile=profile, dataset=ds)
        sections.append(section)
    captions = _paper_notes(table) + [METHOD_CAPTION] + profile_captions(profile)
    return TableView(table.name, f"{table.display_name}: {table.title}", captions, columns, sections, csv_columns)


def class_mapping(table: PaperTable, result: RowResult) -> dict[str, str]:
    """Paper class key -> our class name (case-insensitive); every class must match."""
    ours = {c.lower(): c for c in result.class_names}
    keys = [c.key for c in table.classes]
    if set(ours) != set(keys):
        raise ResultsInputError(f"row {result.spec.key} ({result.spec.dataset}): its classes {result.class_names} "
                                f"are not {table.display_name}'s classes {keys}; is the row's dataset right?")
    return {k: ours[k] for k in keys}


def build_per_class_view(table: PaperTable, results: Sequence[RowResult], paper: PaperTables,
                         profile: str = FULL_PROFILE, name: str | None = None,
                         summary: PaperTable | None = None) -> TableView:
    """Per-class recall (%) like Tables 12-14: paper rows, then per our row its fold mean, pooled and Δ lines."""
    matched = match_rows(table, results)
    classes = list(table.classes)
    columns = [ViewColumn("dataset", "Dataset"), ViewColumn("method", "Method")]
    columns += [ViewColumn(f"class_{c.key}", c.label, True) for c in classes]
    columns += [ViewColumn("uar", "UAR", True), ViewColumn("war", "WAR", True)]
    csv_columns = ["table", "profile", "dataset", "source", "row_key", "paper_row_key", "method"]
    csv_columns += [f"class_{c.key}" for c in classes] + ["uar", "war"]

    def paper_line(row: PaperRow) -> Line:
        pc = row.per_class or {}
        cells = {"method": _method_cell(row), "uar": fmt(row.uar), "war": fmt(row.war)}
        cells.update({f"class_{c.key}": fmt(pc.get(c.key)) for c in classes})
        record = {"source": "paper", "row_key": row.key, "paper_row_key": row.key, "method": row.display_name,
                  "uar": row.uar, "war": row.war, **{f"class_{c.key}": pc.get(c.key) for c in classes}}
        marks = frozenset(f"class_{m}" if m in pc else m for m in row.underlined)
        return Line("paper", cells, record, marks)

    def ours_lines(r: RowResult, row: PaperRow | None) -> list[Line]:
        names = class_mapping(table, r)
        mean = {k: pct(r.per_class_mean.get(names[k])) for k in names}
        pooled = {k: pct(r.pooled["per_class_recall"].get(names[k])) for k in names}
        uar, war = pct(r.mean("uar")), pct(r.mean("war"))
        uar_p, war_p = pct(r.pooled_value("uar")), pct(r.pooled_value("war"))
        base = {"row_key": r.spec.key, "paper_row_key": row.key if row else None}
        lines = []
        for kind, label, values, u, w in (("ours", "fold mean", mean, uar, war),
                                          ("ours_pooled", "pooled", pooled, uar_p, war_p)):
            cells = {"method": f"{our_label(r)}, {label}", "uar": fmt(u), "war": fmt(w)}
            cells.update({f"class_{k}": fmt(v) for k, v in values.items()})
            record = {**base, "source": kind, "method": cells["method"], "uar": u, "war": w,
                      **{f"class_{k}": v for k, v in values.items()}}
            lines.append(Line(kind, cells, record))
        if row is not None:
            pc = row.per_class or {}
            d = {k: diff(mean[k], pc.get(k)) for k in names}
            du, dw = diff(uar, row.uar), diff(war, row.war)
            cells = {"method": f"Δ {our_label(r)} − paper", "uar": fmt(du, True) if du is not None else "",
                     "war": fmt(dw, True) if dw is not None else ""}
            cells.update({f"class_{k}": fmt(v, True) if v is not None else "" for k, v in d.items()})
            record = {**base, "source": "diff", "method": cells["method"], "uar": du, "war": dw,
                      **{f"class_{k}": v for k, v in d.items()}}
            lines.append(Line("diff", cells, record))
        return lines

    sections = []
    for ds, rows in table.sections.items():
        section = Section(ds, paper.dataset_title(ds))
        for row in rows:
            section.lines.append(paper_line(row))
            for r in matched.get((ds, row.key), []):
                section.lines += ours_lines(r, row)
        for r in matched.get((ds, None), []):
            section.lines += ours_lines(r, None)
        for line in section.lines:
            line.record.update(table=table.name, profile=profile, dataset=ds)
        sections.append(section)
    heading = f"{table.display_name}: {table.title}"
    if summary is not None:
        heading = f"{summary.display_name}, per class ({table.display_name} of the paper): {table.title}"
    captions = _paper_notes(table) + [
        "Per-class recall in percent. Ours, fold mean: each class's recall averaged over the folds (the published "
        "per-class numbers average to the published fold-mean UAR); pooled: recall over all folds' predictions "
        "pooled; Δ = ours (fold mean) − paper, in points."
    ] + profile_captions(profile)
    return TableView(name or table.name, heading, captions, columns, sections, csv_columns)
