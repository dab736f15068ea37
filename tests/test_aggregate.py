"""The aggregation stage: hand-made fold folders -> tables beside the paper, DVC files, MLflow runs."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maedfer.results.aggregate import aggregate_table, load_spec, parse_row_arg
from maedfer.results.collect import ResultsInputError
from tests.helpers import rest_json, running_mlflow_server

REPO = Path(__file__).resolve().parents[1]
DFEW = ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]
ABC = ["a", "b", "c"]

# Two folds of a 3-class test, worked out by hand:
#   fold1: recall a 2/2, b 1/2, c 1/2 -> UAR 2/3;  WAR 4/6
#   fold2: recall a 1/3, b 1/1, c 2/2 -> UAR 7/9;  WAR 4/6
#   fold mean UAR 13/18, sample std (1/9)/sqrt(2); WAR 2/3, std 0
#   pooled: a 3/5, b 2/3, c 3/4 -> UAR (3/5 + 2/3 + 3/4)/3 = 121/180;  WAR 8/12
FOLD1 = dict(labels=[0, 0, 1, 1, 2, 2], preds=[0, 0, 1, 0, 2, 1], uar=2 / 3, war=4 / 6, recall=[1.0, 0.5, 0.5],
             cm=[[2, 0, 0], [1, 1, 0], [0, 1, 1]], f1=0.6556)
FOLD2 = dict(labels=[0, 0, 0, 1, 2, 2], preds=[0, 1, 1, 1, 2, 2], uar=7 / 9, war=4 / 6, recall=[1 / 3, 1.0, 1.0],
             cm=[[1, 2, 0], [0, 1, 0], [0, 0, 2]], f1=0.6667)
UAR_MEAN, UAR_STD, WAR_MEAN = 100 * 13 / 18, 100 * (1 / 9) / math.sqrt(2), 100 * 2 / 3
UAR_POOLED, WAR_POOLED = 100 * 121 / 180, 100 * 8 / 12
PAPER_EPOCHS_50_DFEW = (62.59, 74.88)  # Table 2, DFEW, 50 epochs


def write_fold(folder: Path, names: list[str], fold: dict, run_id: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {"uar": fold["uar"], "war": fold["war"], "weighted_f1": fold["f1"],
               "per_class_recall": dict(zip(names, fold["recall"], strict=True)),
               "support": {n: sum(1 for y in fold["labels"] if y == i) for i, n in enumerate(names)},
               "absent_classes": [], "never_predicted": [], "confusion_matrix": fold["cm"], "class_names": names,
               "num_samples": len(fold["labels"]), "uar_over": "present"}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    lines = ["clip_id,label,pred," + ",".join(f"p_{n}" for n in names)]
    for i, (y, p) in enumerate(zip(fold["labels"], fold["preds"], strict=True)):
        probs = ["0.9" if j == p else f"{0.1 / (len(names) - 1):.6f}" for j in range(len(names))]
        lines.append(f"{folder.name}_{i:03d},{y},{p}," + ",".join(probs))
    (folder / "predictions.csv").write_text("\n".join(lines) + "\n")
    if run_id:
        (folder / "mlflow_run.json").write_text(json.dumps({"run_id": run_id}))
    return folder


@pytest.fixture
def abc_folds(tmp_path: Path) -> list[Path]:
    return [write_fold(tmp_path / "runs" / "fold1", ABC, FOLD1, run_id="0123abcd"),
            write_fold(tmp_path / "runs" / "fold2", ABC, FOLD2)]


@pytest.fixture
def dfew_folds(tmp_path: Path) -> list[Path]:
    # fold1: one clip per class, fear -> disgust; fold2: happy twice, both -> sad
    f1 = dict(labels=list(range(7)), preds=[0, 1, 2, 3, 4, 5, 5], uar=6 / 7, war=6 / 7,
              recall=[1, 1, 1, 1, 1, 1, 0], f1=0.8)
    f2 = dict(labels=[0, 0, 1, 2, 3, 4, 5, 6], preds=[1, 1, 1, 2, 3, 4, 5, 6], uar=6 / 7, war=6 / 8,
              recall=[0, 1, 1, 1, 1, 1, 1], f1=0.7)
    for f in (f1, f2):
        cm = [[0] * 7 for _ in range(7)]
        for y, p in zip(f["labels"], f["preds"], strict=True):
            cm[y][p] += 1
        f["cm"] = cm
    return [write_fold(tmp_path / "dfew" / "fold1", DFEW, f1), write_fold(tmp_path / "dfew" / "fold2", DFEW, f2)]


def _csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_parse_row_arg_and_spec(tmp_path: Path) -> None:
    r = parse_row_arg("mae_dfer:DFEW:runs/a/fold1, runs/a/fold2/metrics.json")
    assert (r.key, r.dataset, r.paper_row_key) == ("mae_dfer", "dfew", "mae_dfer")
    assert r.folds == (Path("runs/a/fold1"), Path("runs/a/fold2/metrics.json"))
    assert parse_row_arg("official=mae_dfer:dfew:x").paper_row_key == "mae_dfer"
    assert parse_row_arg("extra=none:dfew:x").paper_row_key is None
    with pytest.raises(ResultsInputError, match="expected KEY\\[=PAPER_KEY\\]:DATASET:FOLD_DIR"):
        parse_row_arg("mae_dfer:dfew")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"table": "table2", "profile": "demo",
                                "rows": [{"key": "epochs_50", "dataset": "dfew", "folds": ["a/fold1", "a/fold2"]}]}))
    loaded = load_spec(spec)
    assert loaded["table"] == "table2" and loaded["rows"][0].folds == (Path("a/fold1"), Path("a/fold2"))


def test_fold_mean_pooled_and_three_formats(tmp_path: Path, abc_folds: list[Path]) -> None:
    out = tmp_path / "out"
    folds = [str(abc_folds[0]), str(abc_folds[1] / "metrics.json")]  # a folder or its metrics.json
    res = aggregate_table("table2", [parse_row_arg(f"epochs_50:dfew:{','.join(folds)}")], out, profile="full",
                          tracking=False)
    r = res.results[0]
    assert r.num_folds == 2 and [f.fold for f in r.folds] == [1, 2]
    assert 100 * r.mean("uar") == pytest.approx(UAR_MEAN) and 100 * r.std("uar") == pytest.approx(UAR_STD)
    assert 100 * r.mean("war") == pytest.approx(WAR_MEAN) and r.std("war") == pytest.approx(0.0)
    assert 100 * r.pooled_value("uar") == pytest.approx(UAR_POOLED)
    assert 100 * r.pooled_value("war") == pytest.approx(WAR_POOLED)
    assert res.parent_run_id is None and not (tmp_path / "mlflow.db").exists()

    paper_uar, paper_war = PAPER_EPOCHS_50_DFEW
    d_uar, d_war = UAR_MEAN - paper_uar, WAR_MEAN - paper_war
    names = sorted(p.name for p in out.iterdir())
    assert names == ["confusion", "curves", "metrics.json", "table2.csv", "table2.html", "table2.md", "table2.tex"]

    md = (out / "table2.md").read_text()
    assert md.startswith("### Table 2: Ablation study on the pre-training epochs.")
    md_lines = md.splitlines()
    paper_idx = next(i for i, ln in enumerate(md_lines) if "| 50 |" in ln)
    assert "| 50 | 62.59 | 74.88 |" in md_lines[paper_idx]
    ours = md_lines[paper_idx + 1]  # our row right after the paper row it reproduces
    assert ours.startswith("|  | **Ours (epochs_50)** |")
    assert f"{UAR_MEAN:.2f} ± {UAR_STD:.2f}" in ours and f"{WAR_MEAN:.2f} ± 0.00" in ours
    assert f"| {UAR_POOLED:.2f} | {WAR_POOLED:.2f} | {d_uar:+.2f} | {d_war:+.2f} |" in ours
    assert "| FERV39k | 0 (from scratch) |" in md  # the paper's other section is kept
    assert "DEMO PROFILE" not in md

    rows = _csv_rows(out / "table2.csv")
    assert len(rows) == 11  # 10 paper rows + ours
    mine = [x for x in rows if x["source"] == "ours"]
    assert len(mine) == 1
    mine = mine[0]
    assert (mine["dataset"], mine["row_key"], mine["paper_row_key"], mine["num_folds"]) == ("dfew", "epochs_50",
                                                                                            "epochs_50", "2")
    for col, value in (("uar", UAR_MEAN), ("uar_std", UAR_STD), ("uar_pooled", UAR_POOLED), ("war", WAR_MEAN),
                       ("paper_uar", paper_uar), ("uar_diff", d_uar), ("war_diff", d_war),
                       ("uar_pooled_diff", UAR_POOLED - paper_uar)):
        assert float(mine[col]) == pytest.approx(value, abs=1e-4), col
    paper_row = next(x for x in rows if (x["source"], x["dataset"], x["row_key"]) == ("paper", "dfew", "epochs_50"))
    assert (float(paper_row["uar"]), float(paper_row["war"]), paper_row["uar_diff"]) == (paper_uar, paper_war, "")

    tex = (out / "table2.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex and r"\begin{tabular}" in tex
    tex_ours = next(ln for ln in tex.splitlines() if r"\textbf{Ours (epochs\_50)}" in ln)
    assert f"{UAR_MEAN:.2f} $\\pm$ {UAR_STD:.2f}" in tex_ours and f"{d_uar:+.2f}" in tex_ours
    header = next(ln for ln in tex.splitlines() if ln.startswith("Dataset & Method"))
    assert tex_ours.endswith(r"\\") and tex_ours.count("&") == header.count("&")
    assert "50 & 62.59 & 74.88" in tex


def test_dvc_metrics_and_confusion_files(tmp_path: Path, abc_folds: list[Path]) -> None:
    out = tmp_path / "out"
    aggregate_table("table2", [parse_row_arg(f"epochs_50:dfew:{abc_folds[0]},{abc_folds[1]}")], out, tracking=False)
    m = json.loads((out / "metrics.json").read_text())
    assert (m["table"], m["profile"], m["unit"]) == ("table2", "full", "percent")
    row = m["rows"]["epochs_50"]["dfew"]
    assert row["uar_mean"] == pytest.approx(UAR_MEAN, abs=1e-4) and row["uar_std"] == pytest.approx(UAR_STD, abs=1e-4)
    assert row["uar_pooled"] == pytest.approx(UAR_POOLED, abs=1e-4)
    assert row["war_pooled"] == pytest.approx(WAR_POOLED, abs=1e-4)
    assert row["uar_diff"] == pytest.approx(UAR_MEAN - PAPER_EPOCHS_50_DFEW[0], abs=1e-4)
    assert row["paper_uar"] == PAPER_EPOCHS_50_DFEW[0] and row["num_folds"] == 2 and row["num_samples"] == 12
    assert row["per_fold"]["fold2"]["uar"] == pytest.approx(100 * 7 / 9, abs=1e-4)
    assert row["per_class_pooled"] == pytest.approx({"a": 60.0, "b": 100 * 2 / 3, "c": 75.0}, abs=1e-4)

    conf = out / "confusion" / "epochs_50-dfew.csv"
    assert conf.read_text().splitlines()[0] == "actual,predicted"
    pairs = [(x["actual"], x["predicted"]) for x in _csv_rows(conf)]
    assert len(pairs) == 12 and set(pairs) <= {(a, b) for a in ABC for b in ABC}
    summed = [[FOLD1["cm"][i][j] + FOLD2["cm"][i][j] for j in range(3)] for i in range(3)]
    assert [[pairs.count((a, b)) for b in ABC] for a in ABC] == summed
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_per_class_table_and_demo_caption(tmp_path: Path, dfew_folds: list[Path]) -> None:
    out = tmp_path / "out"
    aggregate_table("table5", [parse_row_arg(f"mae_dfer:dfew:{dfew_folds[0]},{dfew_folds[1]}")], out, profile="demo",
                    tracking=False)
    for suffix in (".md", ".csv", ".tex"):
        assert (out / f"table5{suffix}").is_file() and (out / f"table5_per_class{suffix}").is_file()
    for name in ("table5.md", "table5_per_class.md", "table5.tex"):
        assert "DEMO PROFILE" in (out / name).read_text() and "NOT a reproduction" in (out / name).read_text()
    rows = _csv_rows(out / "table5_per_class.csv")
    by = {(x["source"], x["row_key"]): x for x in rows}
    mean, pooled, delta = by[("ours", "mae_dfer")], by[("ours_pooled", "mae_dfer")], by[("diff", "mae_dfer")]
    paper = by[("paper", "mae_dfer")]
    assert float(paper["class_happy"]) == 92.92 and float(paper["class_angry"]) == 76.94
    # happy: recall 1 in fold1, 0 in fold2 -> fold mean 50; pooled 1 of 3
    assert float(mean["class_happy"]) == pytest.approx(50.0) and float(mean["class_fear"]) == pytest.approx(50.0)
    assert float(mean["class_sad"]) == pytest.approx(100.0)
    assert float(pooled["class_happy"]) == pytest.approx(100 / 3, abs=1e-4)
    assert float(delta["class_happy"]) == pytest.approx(50.0 - 92.92, abs=1e-4)
    assert float(delta["uar"]) == pytest.approx(100 * 6 / 7 - 63.41, abs=1e-4)
    md = (out / "table5_per_class.md").read_text()
    assert "| Happy | Sad | Neutral | Anger | Surprise | Disgust | Fear | UAR | WAR |" in md
    assert f"| Δ Ours (mae_dfer) − paper | {50 - 92.92:+.2f} |" in md
    main = (out / "table5.md").read_text()
    assert "| MAE-DFER (ours) | 85 | 50 | 63.41 | 74.43 |" in main and "VideoMAE [54] † | 86 | 81 | 63.60" in main


def test_bad_inputs_give_one_line_errors(tmp_path: Path, abc_folds: list[Path], dfew_folds: list[Path],
                                         capsys) -> None:
    import pipeline.aggregate as cli
    empty = tmp_path / "runs" / "fold3"
    empty.mkdir()
    out = tmp_path / "out"
    code = cli.main(["--table", "table2", "--out", str(out), "--no-tracking",
                     "--row", f"epochs_50:dfew:{abc_folds[0]},{empty}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"aggregate: error: {empty}: no metrics.json") and "python -m pipeline.finetune" in err
    assert not out.exists()  # nothing written on bad input

    cases = [
        (["--table", "table99"], "no such paper table; known: table2"),
        (["--table", "table2", "--row", f"epoch50:dfew:{abc_folds[0]}"], "has no paper row 'epoch50'"),
        (["--table", "table5", "--row", f"mae_dfer:ferv39k:{abc_folds[0]}"], "table5 has no dataset 'ferv39k'"),
        (["--table", "table5", "--row", f"mae_dfer:dfew:{abc_folds[0]}"], "are not Table 12's classes"),
        (["--table", "table2", "--row", f"epochs_50:dfew:{abc_folds[0]},{abc_folds[0]}"], "is given twice"),
        (["--table", "table2", "--row", f"epochs_50:dfew:{abc_folds[0]},{dfew_folds[1]}"], "class names"),
        (["--table", "table2"], "no rows given"),
    ]
    for args, message in cases:
        code = cli.main([*args, "--out", str(out), "--no-tracking"])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)

    (abc_folds[1] / "predictions.csv").write_text("clip_id,label,pred,p_a,p_b,p_c\nx,0,0,1,0,0\n")
    code = cli.main(["--table", "table2", "--out", str(out), "--no-tracking",
                     "--row", f"epochs_50:dfew:{abc_folds[1]}"])
    err = capsys.readouterr().err
    assert code == 2 and "disagree" in err and str(abc_folds[1]) in err

    code = cli.main(["--table", "table2", "--out", str(out), "--no-tracking", "--row", f"x=none:dfew:{abc_folds[0]}"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["rows"]["x"]["dfew"]["uar_mean"] == round(100 * 2 / 3, 2)
    assert "| **Ours (x)** |" in (out / "table2.md").read_text()  # a row without a paper counterpart


def test_cli_as_a_pipeline_stage(tmp_path: Path, abc_folds: list[Path]) -> None:
    """The command a Snakemake/DVC rule runs (from the repository root): JSON summary on stdout, exit 0."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'unused.db'}"}
    cmd = [sys.executable, "-m", "pipeline.aggregate", "--table", "table2", "--out", str(tmp_path / "t2"),
           "--no-tracking", "--profile", "demo", "--row", f"epochs_50:dfew:{abc_folds[0]},{abc_folds[1]}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["rows"]["epochs_50"]["dfew"] == {"num_folds": 2, "uar_mean": round(UAR_MEAN, 2),
                                                    "war_mean": round(WAR_MEAN, 2),
                                                    "uar_pooled": round(UAR_POOLED, 2),
                                                    "war_pooled": round(WAR_POOLED, 2)}
    assert summary["mlflow_parent_run"] is None and not (tmp_path / "unused.db").exists()
    assert (tmp_path / "t2" / "table2.md").is_file() and "Traceback" not in proc.stderr


def _runs(uri: str, experiment: str = "maedfer-tables"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], max_results=1000)


@pytest.mark.slow
def test_mlflow_parent_and_fold_runs_without_duplicates(tmp_path: Path, abc_folds: list[Path], monkeypatch) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    rows = [parse_row_arg(f"epochs_50:dfew:{abc_folds[0]},{abc_folds[1]}"),
            parse_row_arg(f"epochs_10:ferv39k:{abc_folds[1]}")]
    first = aggregate_table("table2", rows, tmp_path / "out", profile="demo")
    assert first.parent_run_id
    client, runs = _runs(uri)
    parents = [r for r in runs if r.data.tags.get("maedfer.role") == "parent"]
    assert len(parents) == 1 and parents[0].info.run_id == first.parent_run_id
    p = parents[0]
    assert p.info.run_name == "table2" and (p.data.tags["table"], p.data.tags["profile"]) == ("table2", "demo")
    assert p.data.metrics["epochs_50/dfew/uar_pooled"] == pytest.approx(121 / 180)
    artifacts = {a.path for a in client.list_artifacts(p.info.run_id)}
    assert {"table2.md", "table2.csv", "table2.tex", "metrics.json", "confusion"} <= artifacts
    children = sorted((r for r in runs if r.data.tags.get("mlflow.parentRunId") == p.info.run_id),
                      key=lambda r: r.info.run_name)
    assert [c.info.run_name for c in children] == ["epochs_10/ferv39k/fold2", "epochs_50/dfew/fold1",
                                                   "epochs_50/dfew/fold2"]
    c = children[1]
    assert c.data.metrics["test/uar"] == pytest.approx(2 / 3) and c.data.metrics["test/war"] == pytest.approx(4 / 6)
    assert (c.data.tags["row"], c.data.tags["dataset"], c.data.tags["fold"]) == ("epochs_50", "dfew", "1")
    assert c.data.tags["source_run"] == str(abc_folds[0].resolve()) and c.data.tags["training_run_id"] == "0123abcd"
    assert "training_run_id" not in children[2].data.tags  # fold2 names no training run
    assert children[2].data.metrics["test/uar"] == pytest.approx(7 / 9)

    second = aggregate_table("table2", rows, tmp_path / "out", profile="demo")  # re-run: same parent, new children
    assert second.parent_run_id == first.parent_run_id
    _, runs = _runs(uri)
    assert len([r for r in runs if r.data.tags.get("maedfer.role") == "parent"]) == 1
    again = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == first.parent_run_id]
    assert len(again) == 3 and not {r.info.run_id for r in again} & {r.info.run_id for r in children}
    assert all(client.get_run(r.info.run_id).info.lifecycle_stage == "deleted" for r in children)

    other = aggregate_table("table2", rows[:1], tmp_path / "out_full", profile="full")  # another profile: own parent
    assert other.parent_run_id not in (None, first.parent_run_id)


@pytest.mark.slow
def test_fold_runs_through_the_mlflow_server_rest_api(tmp_path: Path, abc_folds: list[Path], monkeypatch) -> None:
    # the server keeps artifacts in ./mlartifacts of its working folder (tmp_path)
    with running_mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path) as base:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", base)
        rows = [parse_row_arg(f"epochs_50:dfew:{abc_folds[0]},{abc_folds[1]}")]
        for _ in range(2):  # the second run replaces the first one's fold runs
            parent = aggregate_table("table2", rows, tmp_path / "out", profile="demo").parent_run_id
            assert parent
        exp = rest_json(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=maedfer-tables")
        exp_id = exp["experiment"]["experiment_id"]
        found = rest_json(f"{base}/api/2.0/mlflow/runs/search",
                          {"experiment_ids": [exp_id], "filter": f"tags.`mlflow.parentRunId` = '{parent}'",
                           "max_results": 100})
        runs = found.get("runs", [])
        assert len(runs) == 2
        by_name = {r["info"]["run_name"]: r for r in runs}
        assert set(by_name) == {"epochs_50/dfew/fold1", "epochs_50/dfew/fold2"}
        for name, (uar, war) in (("epochs_50/dfew/fold1", (2 / 3, 4 / 6)), ("epochs_50/dfew/fold2", (7 / 9, 4 / 6))):
            metrics = {m["key"]: m["value"] for m in by_name[name]["data"]["metrics"]}
            assert metrics["test/uar"] == pytest.approx(uar) and metrics["test/war"] == pytest.approx(war)
            tags = {t["key"]: t["value"] for t in by_name[name]["data"]["tags"]}
            assert tags["table"] == "table2" and tags["dataset"] == "dfew"
        parents = rest_json(f"{base}/api/2.0/mlflow/runs/search",
                            {"experiment_ids": [exp_id], "filter": "tags.`maedfer.role` = 'parent'"})
        assert [r["info"]["run_id"] for r in parents["runs"]] == [parent]
