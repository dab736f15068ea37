"""DVC experiments and plots on a tiny profile: `dvc exp run -S`, `dvc exp show` columns, `dvc plots diff` HTML."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from maedfer.workflow.dvc import render
from maedfer.workflow.plan import build_plan

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GIT = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@example.org"}


def _tiny_repo(repo: Path) -> None:
    """A git + DVC repository with the stage code and a tiny demo profile (2 short folds, no figures)."""
    data = copy.deepcopy(yaml.safe_load((ROOT / "params/demo.yaml").read_text()))
    data["demo_data"] = {"out": "data/demo", "args": {"tiny": True, "seed": 0}}
    for name, spec in data["datasets"].items():
        spec["root"] = f"data/demo/{name}"
    data["datasets"]["dfew"]["folds"] = [1, 2]
    data["paths"] = {"shards": "data/shards", "runs": "runs", "results": "results"}
    data["mlflow"] = {"experiment": "tiny", "tracking": False}
    data.pop("figures")
    pre = data["pretrain"]["defaults"]
    pre.update(epochs=1, warmup_epochs=0, batch_size=2, preview_every_epochs=0, num_workers=0)
    pre["arch_kwargs"].update(img_size=64, region_size=[2, 2, 2], mask_ratio=0.75)
    ft = data["finetune"]["defaults"]
    ft.update(epochs=2, warmup_epochs=0, batch_size=4, num_workers=0, max_steps_per_epoch=3)
    ft["arch_kwargs"].update(img_size=64, region_size=[2, 2, 2])
    repo.mkdir()
    shutil.copytree(ROOT / "pipeline", repo / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        (repo / "dvc.yaml").write_text(render(build_plan("params.yaml"), "dvc.yaml"))
    finally:
        os.chdir(cwd)
    (repo / ".gitignore").write_text("data/\nruns/\nresults/\n")


def _flat(tree: dict, prefix: str = "") -> dict[str, object]:
    """``dvc exp show --json``'s nested metrics/params -> {"a.b.c": value}."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.mark.slow
def test_exp_run_with_a_changed_lr_shows_uar_war_columns_and_plots_diff_draws_confusion_and_curves(tmp_path):
    repo = tmp_path / "repo"
    _tiny_repo(repo)
    env = {**os.environ, **GIT, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(ROOT),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "MAEDFER_CACHE": os.environ.get("MAEDFER_CACHE", str(Path.home() / ".cache" / "maedfer"))}

    def run(*args: str) -> subprocess.CompletedProcess:
        r = subprocess.run(list(args), capture_output=True, text=True, cwd=repo, env=env, timeout=600)
        assert r.returncode == 0, " ".join(args) + "\n" + r.stderr[-3000:] + r.stdout[-3000:]
        return r

    run("git", "init", "-q")
    run(str(BIN / "dvc"), "init", "-q")
    run("git", "add", ".")
    run("git", "commit", "-q", "-m", "tiny")
    dvc = str(BIN / "dvc")
    run(dvc, "exp", "run", "-n", "lr-a", "-S", "params.yaml:finetune.defaults.base_lr=0.02")
    second = run(dvc, "exp", "run", "-n", "lr-b", "-S", "params.yaml:finetune.defaults.base_lr=0.005")
    assert "Running stage 'pretrain" not in second.stdout and "Running stage 'finetune@" in second.stdout, \
        second.stdout  # the changed lr re-runs the fine-tuning and the table only

    shown = json.loads(run(dvc, "exp", "show", "--json").stdout)
    exps = {}
    for entry in shown:
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs", []):
                exps[rev["name"]] = rev["data"]
    assert {"lr-a", "lr-b"} <= set(exps), list(exps)
    for name, lr in (("lr-a", 0.02), ("lr-b", 0.005)):
        params = _flat(exps[name]["params"]["params.yaml"]["data"])
        assert params["finetune.defaults.base_lr"] == lr
        metrics = _flat(exps[name]["metrics"]["results/table5/metrics.json"]["data"])
        row = "rows.mae_dfer.dfew."
        for key in ("uar_mean", "war_mean", "per_fold.fold1.uar", "per_fold.fold2.war"):
            assert 0 <= metrics[row + key] <= 100, (name, key)
    table = json.loads((repo / "results/table5/metrics.json").read_text())  # the workspace: the last experiment
    assert _flat(exps["lr-b"]["metrics"]["results/table5/metrics.json"]["data"]) == _flat(table)

    out = tmp_path / "plots"
    run(dvc, "plots", "diff", "lr-a", "lr-b", "-o", str(out))
    page = (out / "index.html").read_text()
    for plot in ("results/table5/confusion/mae_dfer-dfew.csv", "table5-mae_dfer-dfew-val_uar",
                 "table5-mae_dfer-dfew-train_loss"):
        assert plot in page, plot
    specs = json.loads(run(dvc, "plots", "diff", "lr-a", "lr-b", "--json").stdout)["data"]
    curve = specs["table5-mae_dfer-dfew-val_uar"][0]["content"]["data"]["values"]
    expected = {(rev, f"mae_dfer-dfew-fold{k}.csv") for rev in ("lr-a", "lr-b") for k in (1, 2)}
    assert {(d["rev"], d["filename"]) for d in curve} == expected  # both experiments' lines, both folds
    assert {str(d["epoch"]) for d in curve} == {"1", "2"}
    confusion = specs["results/table5/confusion/mae_dfer-dfew.csv"][0]["content"]["data"]["values"]
    assert {d["rev"] for d in confusion} == {"lr-a", "lr-b"} and {"actual", "predicted"} <= set(confusion[0])
