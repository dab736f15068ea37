"""The paper's published numbers (``paper_tables.yaml``, shipped with the package) as typed rows.

    tables = load_paper_tables()
    row = tables["table5"].row("dfew", "mae_dfer")      # PaperRow(uar=63.41, war=74.43, ...)

A table has one section per dataset (the paper's row order); a row is found by ``(dataset, key)``.
Numbers are percent; ``None`` is a "-" in the paper. :func:`validate_paper_tables` checks the
structure on every load, so a bad edit of the YAML fails loudly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

PAPER_TABLES_FILE = "paper_tables.yaml"
METRIC_KEYS: tuple[str, ...] = ("uar", "war")
_ROW_FIELDS = {
    "key", "method", "ref", "group", "ours", "default", "dagger", "setting", "params_m", "flops_g", "uar", "war",
    "per_class", "underlined", "derived", "derivation", "stated",
}
_TABLE_FIELDS = {
    "title", "caption", "protocol", "setting_columns", "classes", "sections", "per_class_table", "summary_table",
    "notes", "statements",
}


class PaperTablesError(ValueError):
    """The reference YAML is malformed (names the file and the entry)."""


@dataclass(frozen=True)
class Column:
    """A setting column (``Intra``, ``Region size``...) or a class column of a per-class table."""

    key: str
    label: str


@dataclass(frozen=True)
class PaperRow:
    """One published row: method, metrics and settings as printed in the paper."""
    key: str
    dataset: str
    method: str
    uar: float | None
    war: float | None
    ref: int | None = None
    group: str | None = None
    ours: bool = False
    default: bool = False
    dagger: bool = False
    setting: Mapping[str, Any] = field(default_factory=dict)
    params_m: float | None = None
    flops_g: float | None = None
    per_class: Mapping[str, float | None] | None = None  # class key -> percent
    underlined: tuple[str, ...] = ()
    derived: bool = False
    derivation: str | None = None
    stated: bool = True

    @property
    def display_name(self) -> str:
        """The name as the paper prints it: ``VideoMAE [54] †``, ``MAE-DFER (ours)``."""
        name = self.method + (f" [{self.ref}]" if self.ref is not None else "")
        if self.dagger:
            name += " †"
        if self.ours:
            name += " (ours)"
        return name

    def metric(self, name: str) -> float | None:
        """The value of metric ``name`` (None when the paper gives none)."""
        return getattr(self, name)


@dataclass(frozen=True)
class PaperTable:
    """One published table: its rows per dataset in the paper's order."""
    name: str
    title: str
    sections: Mapping[str, tuple[PaperRow, ...]]  # dataset -> rows in the paper's order
    caption: str | None = None
    protocol: str | None = None
    setting_columns: tuple[Column, ...] = ()
    classes: tuple[Column, ...] = ()  # per-class tables only (keys: our class names, lower case)
    has_compute: bool = False  # prints #Params / FLOPs columns
    per_class_table: str | None = None
    summary_table: str | None = None
    notes: tuple[str, ...] = ()
    statements: Mapping[str, Any] = field(default_factory=dict)  # numbers the text states (Fig. 3)

    @property
    def datasets(self) -> tuple[str, ...]:
        """The datasets of the table, in the paper's order."""
        return tuple(self.sections)

    @property
    def number(self) -> str:
        """``"5"`` for table5, ``"3"`` for fig3."""
        return self.name.removeprefix("table").removeprefix("fig")

    @property
    def display_name(self) -> str:
        """"Table N" or "Fig. N"."""
        return f"Fig. {self.number}" if self.name.startswith("fig") else f"Table {self.number}"

    def row(self, dataset: str, key: str) -> PaperRow | None:
        """The row ``key`` of ``dataset``, None when the paper has none."""
        return next((r for r in self.sections.get(dataset, ()) if r.key == key), None)

    def keys(self, dataset: str) -> list[str]:
        """Row keys of ``dataset`` in the paper's order."""
        return [r.key for r in self.sections.get(dataset, ())]


@dataclass(frozen=True)
class PaperTables:
    """Every published table and the display titles of the datasets."""
    tables: Mapping[str, PaperTable]
    dataset_titles: Mapping[str, str]
    source: str

    def __getitem__(self, name: str) -> PaperTable:
        try:
            return self.tables[name]
        except KeyError:
            raise KeyError(f"no paper table {name!r}; known: {', '.join(self.tables)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.tables

    def __iter__(self):
        return iter(self.tables)

    def dataset_title(self, dataset: str) -> str:
        """Display title of ``dataset`` (its key when unknown)."""
        return self.dataset_titles.get(dataset, dataset)


def _is_percent(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and 0.0 <= v <= 100.0


def validate_paper_tables(raw: Mapping[str, Any]) -> list[str]:
    """Structural problems of the raw YAML (empty list when fine)."""
    problems: list[str] = []
    tables = raw.get("tables")
    if not isinstance(tables, Mapping) or not tables:
        return ["no 'tables' mapping"]
    datasets = raw.get("datasets") or {}
    for name, t in tables.items():
        where = f"tables.{name}"
        if not isinstance(t, Mapping):
            problems.append(f"{where}: not a mapping")
            continue
        problems += [f"{where}: unknown field {k!r}" for k in t if k not in _TABLE_FIELDS]
        if not t.get("title"):
            problems.append(f"{where}: no title")
        sections = t.get("sections")
        if not isinstance(sections, Mapping) or not sections:
            problems.append(f"{where}: no sections")
            continue
        setting_keys = [c["key"] for c in t.get("setting_columns", [])]
        class_keys = [c["key"] for c in t.get("classes", [])]
        if len(set(class_keys)) != len(class_keys):
            problems.append(f"{where}: duplicate class keys")
        for link in ("per_class_table", "summary_table"):
            if t.get(link) and t[link] not in tables:
                problems.append(f"{where}: {link} {t[link]!r} is not a table")
        for ds, rows in sections.items():
            if ds not in datasets:
                problems.append(f"{where}: section {ds!r} is not in 'datasets'")
            if not rows:
                problems.append(f"{where}.{ds}: no rows")
                continue
            keys = [r.get("key") for r in rows]
            dupes = sorted({k for k in keys if keys.count(k) > 1})
            if dupes:
                problems.append(f"{where}.{ds}: duplicate row keys {dupes}")
            for r in rows:
                rw = f"{where}.{ds}.{r.get('key')}"
                if not r.get("key") or not r.get("method"):
                    problems.append(f"{rw}: needs key and method")
                problems += [f"{rw}: unknown field {k!r}" for k in r if k not in _ROW_FIELDS]
                for m in METRIC_KEYS:
                    if m not in r:
                        problems.append(f"{rw}: no {m} (write null for a '-')")
                    elif r[m] is not None and not _is_percent(r[m]):
                        problems.append(f"{rw}: {m} = {r[m]!r} is not a percentage")
                if r.get("stated", True) and r.get("uar") is None and r.get("war") is None:
                    problems.append(f"{rw}: neither UAR nor WAR given")
                for m in ("params_m", "flops_g"):
                    v = r.get(m)
                    if v is not None and not (isinstance(v, int | float) and v > 0):
                        problems.append(f"{rw}: {m} = {v!r} is not a positive number")
                if set(r.get("setting", {})) - set(setting_keys):
                    problems.append(f"{rw}: setting keys {sorted(set(r['setting']) - set(setting_keys))} not in "
                                    "setting_columns")
                pc = r.get("per_class")
                if class_keys:
                    if not isinstance(pc, list) or len(pc) != len(class_keys):
                        problems.append(f"{rw}: per_class must list {len(class_keys)} values (null for '-')")
                    else:
                        problems += [f"{rw}: per_class value {v!r} is not a percentage" for v in pc
                                     if v is not None and not _is_percent(v)]
                elif pc is not None:
                    problems.append(f"{rw}: per_class given but the table has no classes")
                allowed_marks = {"uar", "war", "params_m", "flops_g", *class_keys}
                if set(r.get("underlined", [])) - allowed_marks:
                    problems.append(f"{rw}: underlined columns {r['underlined']} unknown")
                if r.get("derived") and not r.get("derivation"):
                    problems.append(f"{rw}: derived without a derivation")
    return problems


def _row(ds: str, r: Mapping[str, Any], class_keys: list[str]) -> PaperRow:
    pc = r.get("per_class")
    return PaperRow(
        key=str(r["key"]), dataset=ds, method=str(r["method"]), uar=r.get("uar"), war=r.get("war"), ref=r.get("ref"),
        group=r.get("group"), ours=bool(r.get("ours", False)), default=bool(r.get("default", False)),
        dagger=bool(r.get("dagger", False)), setting=dict(r.get("setting", {})), params_m=r.get("params_m"),
        flops_g=r.get("flops_g"), per_class=dict(zip(class_keys, pc, strict=True)) if pc is not None else None,
        underlined=tuple(r.get("underlined", ())), derived=bool(r.get("derived", False)),
        derivation=r.get("derivation"), stated=bool(r.get("stated", True)),
    )


def parse_paper_tables(raw: Mapping[str, Any], origin: str = PAPER_TABLES_FILE) -> PaperTables:
    """Validate and build the tables from the parsed YAML ``raw`` (errors name ``origin``)."""
    problems = validate_paper_tables(raw)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PaperTablesError(f"{origin}: {problems[0]}{more}; fix the reference data")
    tables: dict[str, PaperTable] = {}
    for name, t in raw["tables"].items():
        class_keys = [c["key"] for c in t.get("classes", [])]
        sections = {ds: tuple(_row(ds, r, class_keys) for r in rows) for ds, rows in t["sections"].items()}
        tables[name] = PaperTable(
            name=name, title=t["title"], sections=sections, caption=t.get("caption"), protocol=t.get("protocol"),
            setting_columns=tuple(Column(c["key"], c["label"]) for c in t.get("setting_columns", [])),
            classes=tuple(Column(c["key"], c["label"]) for c in t.get("classes", [])),
            has_compute=any("params_m" in r or "flops_g" in r for rows in t["sections"].values() for r in rows),
            per_class_table=t.get("per_class_table"), summary_table=t.get("summary_table"),
            notes=tuple(t.get("notes", ())), statements=dict(t.get("statements", {})),
        )
    return PaperTables(tables=tables, dataset_titles=dict(raw.get("datasets", {})), source=str(raw.get("source", "")))


def read_paper_yaml(path: str | Path | None = None) -> dict[str, Any]:
    """The raw YAML mapping (the packaged file unless ``path`` is given)."""
    if path is None:
        text = resources.files("maedfer.results").joinpath(PAPER_TABLES_FILE).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, Mapping):
        raise PaperTablesError(f"{path or PAPER_TABLES_FILE}: not a YAML mapping; fix the reference data")
    return dict(data)


@functools.lru_cache(maxsize=4)
def load_paper_tables(path: str | None = None) -> PaperTables:
    """Parse and validate the reference tables (cached)."""
    return parse_paper_tables(read_paper_yaml(path), origin=str(path or PAPER_TABLES_FILE))
