"""The transcribed paper numbers (maedfer/results/paper_tables.yaml): internal consistency, and the paper's text."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from maedfer.results.paper import (
    METRIC_KEYS,
    PaperTablesError,
    load_paper_tables,
    parse_paper_tables,
    read_paper_yaml,
    validate_paper_tables,
)

PAPER_TEXT = Path("/work/shared/paper/mae-dfer-paper.txt")
EXPECTED_TABLES = {f"table{n}" for n in range(2, 15)} | {"fig3"}
# Inconsistencies of the paper itself (each one is a note in the YAML).
PER_CLASS_MEAN_EXCEPTIONS = {("table12", "resnet18_gru"), ("table12", "m3dfel"), ("table13", "nr_dfernet"),
                             ("table14", "c3d")}
SUMMARY_EXCEPTIONS = {("table7", "videomae", "uar")}  # 38.43 in Table 7, 38.34 in Table 14


@pytest.fixture(scope="module")
def paper():
    return load_paper_tables()


def test_every_target_table_is_present(paper) -> None:
    assert set(paper.tables) == EXPECTED_TABLES
    assert paper["table12"].summary_table == "table5" and paper["table5"].per_class_table == "table12"


def test_rows_have_uar_war_in_range_and_unique_keys(paper) -> None:
    raw = read_paper_yaml()
    for name, t in raw["tables"].items():
        for ds, rows in t["sections"].items():
            keys = [r["key"] for r in rows]
            assert len(keys) == len(set(keys)), (name, ds)
            for r in rows:
                for m in METRIC_KEYS:
                    assert m in r, (name, ds, r["key"], m)
                    assert r[m] is None or 0.0 <= r[m] <= 100.0, (name, ds, r["key"], m)
                for v in r.get("per_class") or []:
                    assert v is None or 0.0 <= v <= 100.0
                if r.get("ours"):
                    assert r["uar"] is not None and r["war"] is not None
    ours = [r for t in paper.tables.values() for rows in t.sections.values() for r in rows if r.ours]
    assert {r.dataset for r in ours} == {"dfew", "ferv39k", "mafw", "cremad", "ravdess", "enterface"}
    assert all(r.key == "mae_dfer" for r in ours)


def test_validation_catches_bad_edits() -> None:
    raw = read_paper_yaml()
    assert validate_paper_tables(raw) == []
    bad = copy.deepcopy(raw)
    rows = bad["tables"]["table5"]["sections"]["dfew"]
    rows[1]["key"] = rows[0]["key"]
    rows[2]["uar"] = 642.0
    del rows[3]["war"]
    bad["tables"]["table12"]["sections"]["dfew"][0]["per_class"].pop()
    problems = validate_paper_tables(bad)
    assert any("duplicate row keys ['c3d']" in p for p in problems)
    assert any("642.0 is not a percentage" in p for p in problems)
    assert any("no war" in p for p in problems)
    assert any("per_class must list 7 values" in p for p in problems)
    with pytest.raises(PaperTablesError, match="paper_tables.yaml: .* more\\); fix the reference data"):
        parse_paper_tables(bad)


def test_summary_tables_agree_with_per_class_tables(paper) -> None:
    for summary, per_class in (("table5", "table12"), ("table6", "table13"), ("table7", "table14")):
        s, p = paper[summary], paper[per_class]
        assert s.datasets == p.datasets
        for ds in s.datasets:
            assert s.keys(ds) == p.keys(ds)
            for a, b in zip(s.sections[ds], p.sections[ds], strict=True):
                assert (a.method, a.dagger, a.ours, a.params_m, a.flops_g) == (b.method, b.dagger, b.ours, b.params_m,
                                                                               b.flops_g)
                for m in METRIC_KEYS:
                    if (summary, a.key, m) not in SUMMARY_EXCEPTIONS:
                        assert a.metric(m) == b.metric(m), (summary, a.key, m)
    assert paper["table7"].row("mafw", "videomae").uar == 38.43
    assert paper["table14"].row("mafw", "videomae").uar == 38.34


def test_per_class_accuracies_average_to_uar(paper) -> None:
    off = set()
    for name in ("table12", "table13", "table14"):
        for rows in paper[name].sections.values():
            for r in rows:
                values = list(r.per_class.values())
                if None in values:
                    assert all(v is None for v in values)  # a row is either complete or "-"
                    continue
                if abs(sum(values) / len(values) - r.uar) > 0.011:
                    off.add((name, r.key))
    assert off == PER_CLASS_MEAN_EXCEPTIONS


def test_default_configuration_is_the_same_model_everywhere(paper) -> None:
    fd1 = {"dfew": (62.59, 74.88), "ferv39k": (43.12, 52.07)}
    defaults = [(t.name, r) for t in paper.tables.values() for rows in t.sections.values() for r in rows if r.default]
    assert {name for name, _ in defaults} == {"table2", "table3", "table4", "table9", "table11", "fig3"}
    for _, r in defaults:
        assert (r.uar, r.war) == fd1[r.dataset]
    m = paper["table6"].row("ferv39k", "mae_dfer")  # FERV39k has one split: Table 6 is the same run
    assert (m.uar, m.war) == fd1["ferv39k"]
    # the ViT row of Table 3 is VideoMAE with joint appearance and motion targets (Table 10)
    for ds in fd1:
        vit, joint = paper["table3"].row(ds, "vit"), paper["table10"].row(ds, "videomae_joint")
        assert (vit.uar, vit.war, vit.params_m, vit.flops_g) == (joint.uar, joint.war, joint.params_m, joint.flops_g)
        appearance = paper["table10"].row(ds, "videomae_appearance")
        if ds == "ferv39k":  # Table 6's VideoMAE-dagger is the appearance-only VideoMAE on VoxCeleb2
            assert (appearance.uar, appearance.war) == (43.33, 52.39)


def test_text_statements_match_the_tables(paper) -> None:
    t10 = paper["table10"]
    # Sec. 4.3: "+1.51% UAR with 0.30% WAR on DFEW fd1 and 0.39% UAR with 0.13% WAR on FERV39k"
    for ds, (du, dw) in {"dfew": (1.51, 0.30), "ferv39k": (0.39, 0.13)}.items():
        j, a = t10.row(ds, "videomae_joint"), t10.row(ds, "videomae_appearance")
        assert round(j.uar - a.uar, 2) == du and round(j.war - a.war, 2) == dw
    fig3 = paper["fig3"]
    best = fig3.row("dfew", "lambda_0_5")
    for key, stated in (("lambda_1_0", "best_minus_appearance_only"), ("lambda_0_0", "best_minus_motion_only")):
        row, delta = fig3.row("dfew", key), fig3.statements["dfew"][stated]
        assert row.derived and round(best.uar - row.uar, 2) == delta["uar"]
        assert round(best.war - row.war, 2) == delta["war"]
    assert fig3.row("ferv39k", "lambda_0_0").uar is None and not fig3.row("ferv39k", "lambda_0_0").stated
    # Sec. 4.4: MAE-DFER vs the best supervised results
    t5, t6, t7 = paper["table5"], paper["table6"], paper["table7"]
    assert round(t5.row("dfew", "mae_dfer").uar - t5.row("dfew", "dpcnet").uar, 2) == 6.30
    assert round(t5.row("dfew", "mae_dfer").war - t5.row("dfew", "m3dfel").war, 2) == 5.18
    assert round(t6.row("ferv39k", "mae_dfer").uar - t6.row("ferv39k", "stt").uar, 2) == 5.36
    assert round(t6.row("ferv39k", "mae_dfer").war - t6.row("ferv39k", "ial").war, 2) == 3.53
    assert round(t7.row("mafw", "mae_dfer").uar - t7.row("mafw", "t_esfl").uar, 2) == 8.34
    assert round(t7.row("mafw", "mae_dfer").war - t7.row("mafw", "t_esfl").war, 2) == 6.13


# ---------------------------------------------------------------- against the paper's text
def _text_lines() -> list[str]:
    if not PAPER_TEXT.is_file():
        pytest.skip(f"{PAPER_TEXT} not present (the shared paper text is not part of a fresh clone)")
    return PAPER_TEXT.read_text(encoding="utf-8").splitlines()


def _block(lines: list[str], n: int) -> list[str]:
    """The tab-separated lines of Table n (from its caption to the next prose line)."""
    start = next(i for i, line in enumerate(lines) if f"Table {n}:" in line)
    out, seen = [], False
    for line in lines[start + 1:]:
        if "\t" in line:
            seen = True
            out.append(line)
        elif line.strip() and seen:
            break
    return out


def _numbers(line: str) -> list[float | None]:
    """Numeric cells of a line ('-' is None); names, marks and LaTeX cells are skipped."""
    out: list[float | None] = []
    for cell in line.split("\t"):
        cell = re.sub(r"</?u>", "", cell).strip()
        if cell == "-":
            out.append(None)
        elif re.fullmatch(r"\d+(\.\d+)?", cell):
            out.append(float(cell))
    return out


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 9, 10, 12, 13, 14])
def test_row_tables_match_the_paper_text(paper, n: int) -> None:
    lines = _text_lines()
    table = paper[f"table{n}"]
    data = [ln for ln in _block(lines, n) if re.search(r"\d\.\d\d", ln)]
    rows = [r for rows in table.sections.values() for r in rows]
    assert len(data) == len(rows), f"table{n}: {len(data)} data lines in the text, {len(rows)} rows in the YAML"
    for line, row in zip(data, rows, strict=True):
        expected = [row.params_m, row.flops_g] if table.has_compute else []
        expected += list((row.per_class or {}).values()) + [row.uar, row.war]
        got = _numbers(line)
        assert got[-len(expected):] == expected, f"table{n} {row.dataset}/{row.key}: text {line!r}"
        assert line.split("\t")[0].strip() in ("", "DFEW", "FERV39k") or row.method in line


def test_table2_and_table11_match_the_paper_text(paper) -> None:
    lines = _text_lines()
    t2 = paper["table2"]
    block = _block(lines, 2)
    metric_lines = [ln for ln in block if re.match(r"^(DFEW|FERV39k)?\tU?W?AR\t", ln)]
    assert len(metric_lines) == 4
    for i, ds in enumerate(("dfew", "ferv39k")):
        for j, m in enumerate(METRIC_KEYS):
            assert _numbers(metric_lines[2 * i + j]) == [r.metric(m) for r in t2.sections[ds]]
    t11 = paper["table11"]
    for line in _block(lines, 11):
        for key, label in (("pool_local", "Original tokens"), ("pool_region", "Representative tokens")):
            if line.startswith(label):
                d, f = t11.row("dfew", key), t11.row("ferv39k", key)
                assert _numbers(line) == [d.uar, d.war, f.uar, f.war]


def test_table8_matches_the_paper_text(paper) -> None:
    lines = _text_lines()
    t8 = paper["table8"]
    data = [ln for ln in _block(lines, 8) if re.search(r"\d\.\d\d", ln)]
    sections = [t8.sections[ds] for ds in ("cremad", "ravdess", "enterface")]
    assert len(data) == len(sections[0]) == len(sections[1]) == len(sections[2])
    for line, rows in zip(data, zip(*sections, strict=True), strict=True):
        assert _numbers(line) == [v for r in rows for v in (r.uar, r.war)]
        for r in rows:
            assert r.method in line


def test_mae_dfer_headline_numbers_in_the_text(paper) -> None:
    """Spot check: MAE-DFER's UAR/WAR of Tables 5-8 as the text prints them."""
    text = "\n".join(_text_lines())
    for name, ds in (("table5", "dfew"), ("table6", "ferv39k"), ("table7", "mafw")):
        r = paper[name].row(ds, "mae_dfer")
        assert f"MAE-DFER (ours)\t85\t50\t{r.uar:.2f}\t{r.war:.2f}" in text
    rows = [paper["table8"].row(ds, "mae_dfer") for ds in ("cremad", "ravdess", "enterface")]
    c, r, e = [f"{r.uar:.2f}\t{r.war:.2f}" for r in rows]
    assert f"MAE-DFER (ours)\tVideo\t{c}\tMAE-DFER (ours)\tVideo\t{r}\tMAE-DFER (ours)\t{e}" in text
