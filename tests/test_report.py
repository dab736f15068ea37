"""The Snakemake report (`snakemake --report`) and the files it shows: the tables as HTML, the curve CSVs.

:func:`check_report` parses a report's HTML; tests/test_workflow.py calls it after its tiny demo run (a real
``snakemake --report`` over the finished target, so no second run of the DAG).
"""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

from maedfer.results.aggregate import aggregate_table, parse_row_arg
from tests.test_aggregate import dfew_folds  # noqa: F401 (a fixture)


class _Scripts(HTMLParser):
    """The text of every ``<script id=...>`` of a page, by id."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: dict[str, str] = {}
        self._id: str | None = None

    def handle_starttag(self, tag, attrs):
        self._id = dict(attrs).get("id") if tag == "script" else None

    def handle_data(self, data):
        if self._id:
            self.scripts[self._id] = self.scripts.get(self._id, "") + data

    def handle_endtag(self, tag):
        self._id = None


class _Tables(HTMLParser):
    """Every ``<table>`` of a page: its header cells and its body rows (cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, list]] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"header": [], "rows": []})
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            key = "header" if not self.tables[-1]["header"] else "rows"
            self.tables[-1][key] = self._row if key == "header" else [*self.tables[-1]["rows"], self._row]
            self._row = None


def html_tables(text: str) -> list[dict[str, list]]:
    """The tables of an HTML page (header cells, body rows)."""
    parser = _Tables()
    parser.feed(text)
    return parser.tables


def report_results(path: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """(results by file path, categories) of a Snakemake HTML report."""
    parser = _Scripts()
    parser.feed(path.read_text())
    results = re.search(r"var results = (.*);\s*$", parser.scripts["results"], re.S)
    categories = re.search(r"var categories = (.*);\s*$", parser.scripts["categories"], re.S)
    return json.loads(results.group(1)), json.loads(categories.group(1))


def _decoded(data_uri: str) -> bytes:
    head, _, payload = data_uri.partition(",")
    assert head.endswith(";base64"), head
    return base64.b64decode(payload)


def check_report(path: Path, table: str = "table5") -> None:
    """The report has the table (rendered), the figures, the confusion matrix and the curves, with captions."""
    results, categories = report_results(path)
    assert {"data", "pre-training", "fine-tuning", "results"} <= set(categories), list(categories)
    by_name: dict[str, list[dict]] = {}
    for entry in results.values():
        by_name.setdefault(entry["name"], []).append(entry)

    [page] = by_name[f"{table}.html"]
    assert page["data_uri"].startswith("data:text/html")
    tables = html_tables(_decoded(page["data_uri"]).decode())
    assert len(tables) == 2  # the main table and its per-class companion
    assert "UAR" in " ".join(tables[0]["header"]) and any("MAE-DFER" in " ".join(r) for r in tables[0]["rows"])
    assert "base_lr=" in page["caption"] and "epochs=" in page["caption"] and "params file" in page["caption"]

    images = {name: e for name, es in by_name.items() for e in es if e["mime_type"] == "image/png"}
    for name in ("confusion-mae_dfer-dfew.png", "curves-mae_dfer-dfew.png", "fig5.png", "fig4-mask0.75.png"):
        assert _decoded(images[name]["data_uri"]).startswith(b"\x89PNG"), name
        assert "figures.fig" in images[name]["caption"] and "python" in images[name]["caption"], name
    folds = [e for e in by_name["history.json"] if "fold" in e["labels"]]
    assert len(folds) >= 2 and all("base_lr" in e["caption"] for e in folds)  # the fold's resolved settings
    assert "metrics.json" in by_name and "report.json" in by_name


def test_aggregate_writes_the_tables_as_html_and_each_folds_curves(tmp_path, dfew_folds):  # noqa: F811
    folds = dfew_folds
    for k, folder in enumerate(folds, 1):
        (folder / "history.json").write_text(json.dumps([
            {"epoch": e, "train/loss": 1.0 / e, "val/uar": 0.1 * e + 0.01 * k, "val/war": 0.2 * e} for e in (2, 1)]))
    out = tmp_path / "out"
    aggregate_table("table2", [parse_row_arg(f"epochs_50:dfew:{','.join(map(str, folds))}")], out, tracking=False)
    tables = html_tables((out / "table2.html").read_text())
    assert len(tables) == 1 and "UAR" in " ".join(tables[0]["header"])
    md_rows = [line for line in (out / "table2.md").read_text().splitlines() if line.startswith("| ")][1:]
    assert len(tables[0]["rows"]) == len(md_rows)  # the Markdown table's lines, rendered
    curves = sorted(p.name for p in (out / "curves").iterdir())
    assert curves == [f"epochs_50-dfew-fold{k}.csv" for k in range(1, len(folds) + 1)]
    lines = (out / "curves" / curves[1]).read_text().splitlines()
    assert lines == ["epoch,train_loss,val_uar,val_war", "1,1.0,12.0,20.0", "2,0.5,22.0,40.0"]
