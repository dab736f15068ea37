"""The DAG over the params files: schema errors, resolved settings, Snakemake == DVC, early failure, reruns, report."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from maedfer.workflow.dvc import write_dvc_files
from maedfer.workflow.plan import build_plan
from maedfer.workflow.profile import ParamsError, load_profile
from tests.helpers import rest_json, running_mlflow_server
from tests.test_report import check_report

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def _params(name: str = "params.yaml") -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def _write(tmp_path: Path, data: dict, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_both_params_files_validate_and_share_jobs():
    paper = build_plan(ROOT / "params.yaml")
    demo = build_plan(ROOT / "params/demo.yaml")
    assert paper.profile.name == "paper" and demo.profile.name == "demo"
    # one fold run feeds Tables 2, 3, 4, 9, 11 and Fig. 3: the same job, listed once
    shared = "finetune_mae_dfer_dfew_fold1"
    users = [t for t, files in paper.targets.items() if t != "reproduce_all"
             and shared in {j.name for j in paper.closure(files)}]
    assert {"reproduce_table2", "reproduce_table3", "reproduce_table4", "reproduce_table5", "reproduce_table9",
            "reproduce_table11", "reproduce_fig3"} <= set(users)
    assert sum(1 for j in paper.jobs if j == shared) == 1
    runs = [name for name, run in _params()["pretrain"]["runs"].items() if "checkpoint" not in run]  # trained
    assert sorted(j.name for j in paper.jobs.values() if j.stage == "pretrain") == sorted(f"pretrain_{r}" for r in runs)
    t5 = {j.name for j in paper.closure(paper.targets["reproduce_table5"])}
    assert {f"finetune_mae_dfer_dfew_fold{k}" for k in range(1, 6)} <= t5
    assert "pretrain_mae_dfer" in t5 and "ingest_ferv39k" not in t5
    assert paper.targets["reproduce_table12"] == [o for o in paper.targets["reproduce_table5"] if "_per_class" in o]
    assert {j.stage for j in demo.jobs.values()} == {"demo_data", "ingest", "pretrain", "finetune", "aggregate",
                                                     "fig4", "fig5", "confusion", "curves"}


def test_resolved_settings_follow_the_pretraining_and_the_dataset():
    p = load_profile(ROOT / "params.yaml")
    s = p.finetune_settings("videomae_appearance", "ferv39k")
    assert s["arch"] == "vit_base_patch16_160" and s["arch_kwargs"] == {} and s["stride"] == 1
    assert s["init"] == "videomae_appearance" and s["epochs"] == 100
    s = p.finetune_settings("intra_only", "dfew")
    assert s["arch"] == "lgi_former_base_patch16_160" and s["stride"] == 4
    assert s["arch_kwargs"] == {"region_size": [2, 5, 10], "use_inter": False, "use_lgi": False}
    assert p.finetune_settings("pool_local", "dfew")["arch_kwargs"]["pool"] == "local"
    assert p.finetune_settings("scratch", "dfew")["init"] is None
    pre = p.pretrain_settings("size_tiny")
    assert pre["arch"] == "pretrain_lgi_former_tiny_patch16_160" and pre["epochs"] == 50
    assert p.pretrain_settings("lambda_0_0")["arch_kwargs"] == {"region_size": [2, 5, 10], "mask_ratio": 0.9,
                                                                "appearance_weight": 0.0}


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d["finetune"]["defaults"].update(base_lr="fast"), "finetune.defaults.base_lr: 'fast' is not of type"),
    (lambda d: d["finetune"]["defaults"].update(lr=1e-3), "finetune.defaults: Additional properties"),
    (lambda d: d["pretrain"]["defaults"].update(epochs=-1), "pretrain.defaults.epochs: -1 is less than"),
    (lambda d: d["finetune"]["experiments"]["mae_dfer"].update(pretraining="nope"),
     "finetune.experiments.mae_dfer.pretraining: 'nope' is not in pretrain.runs"),
    (lambda d: d["tables"]["table5"]["rows"].update(best_ever="mae_dfer"),
     "tables.table5.rows.best_ever: no such row in the paper's table5"),
    (lambda d: d["tables"]["table2"]["datasets"].update(dfew=[9]), "tables.table2.datasets.dfew: folds [9]"),
    (lambda d: d["tables"]["table5"]["rows"].update(mae_dfer="missing"),
     "tables.table5.rows.mae_dfer: experiment 'missing' is not in finetune.experiments"),
    (lambda d: d.pop("datasets"), "(top level): 'datasets' is a required property"),
    (lambda d: d["datasets"]["dfew"].update(folds="all"), "datasets.dfew.folds: 'all' is not of type 'array'"),
])
def test_a_bad_setting_is_named_in_one_line(tmp_path, edit, expected):
    data = _params()
    edit(data)
    path = _write(tmp_path, data)
    with pytest.raises(ParamsError) as err:
        load_profile(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and expected in msg and "\n" not in msg


def test_maedfer_workflow_check_reports_the_key(tmp_path):
    data = _params()
    data["finetune"]["defaults"]["epochs"] = "many"
    path = _write(tmp_path, data)
    r = subprocess.run([str(BIN / "maedfer"), "workflow", "check", str(path)], capture_output=True, text=True)
    assert r.returncode == 2 and "finetune.defaults.epochs" in r.stderr and "Traceback" not in r.stderr
    ok = subprocess.run([str(BIN / "maedfer"), "workflow", "check"], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0 and "params/demo.yaml: ok" in ok.stdout


def test_the_snakefile_imports_only_the_torch_free_workflow_modules():
    # what workflow/rules/common.smk imports and builds at parse time: no torch, mlflow, numpy or pandas
    code = ("import sys; from maedfer.workflow.plan import build_plan, missing_root_message; "
            "from maedfer.workflow.profile import ParamsError; "
            "build_plan('params.yaml'); build_plan('params/demo.yaml'); "
            "print(sorted(m for m in ('torch', 'mlflow', 'numpy', 'pandas') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
    common = (ROOT / "workflow/rules/common.smk").read_text()
    assert set(re.findall(r"^from (maedfer\S*) import", common, re.M)) == {"maedfer.workflow.plan",
                                                                          "maedfer.workflow.profile"}


def test_generated_dvc_files_are_current():
    assert write_dvc_files(ROOT, check=True) == [], "run `maedfer workflow dvc` and commit dvc.yaml, paper/dvc.yaml"


# -- Snakemake and DVC describe the same jobs ------------------------------------------------------------------


Outputs = tuple[str, ...]  # a job's output files, sorted: how a Snakemake job and a DVC stage are matched


def _snakemake_jobs(*args: str) -> dict[Outputs, dict]:
    """outputs -> {rule, cmd, inputs, outputs} of every job of a forced dry run (every job listed)."""
    r = subprocess.run([str(BIN / "snakemake"), "-n", "-p", "-F", *args], capture_output=True, text=True, cwd=ROOT,
                       env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:] + r.stdout[-2000:]
    jobs = {}
    for block in re.split(r"\n(?=\[[^\n]*\]\n(?:local)?rule )", r.stdout):
        m = re.search(r"^(?:local)?rule (\S+):$", block, re.M)
        if not m or "Shell command:" not in block:
            continue
        field = {k: re.search(rf"^    {k}: (.*)$", block, re.M) for k in ("input", "output", "log")}
        if field["output"] is None:  # a target rule (inputs only)
            continue
        cmd = re.search(r"^Shell command: (.*)$", block, re.M).group(1)
        redirect = f" > {field['log'].group(1)} 2>&1"  # every job writes its output to its log file
        assert cmd.endswith(redirect), cmd
        outputs = sorted(field["output"].group(1).split(", "))
        jobs[tuple(outputs)] = {
            "rule": m.group(1),
            "cmd": cmd.removesuffix(redirect),
            "inputs": sorted(field["input"].group(1).split(", ")) if field["input"] else [],
            "outputs": outputs,
        }
    return jobs


def _dvc_stages(dvc_file: str, raw_roots: set[str]) -> dict[Outputs, dict]:
    from dvc.repo import Repo

    stages = {}
    with Repo(str(ROOT)) as repo:
        for stage in repo.index.stages:
            if Path(stage.path).resolve() != (ROOT / dvc_file).resolve():
                continue
            rel = lambda o: os.path.relpath(o.fs_path, ROOT)  # noqa: E731
            outputs = sorted(rel(o) for o in stage.outs)
            stages[tuple(outputs)] = {
                "cmd": stage.cmd,
                "inputs": sorted(rel(d) for d in stage.deps if not hasattr(d, "params")
                                 and rel(d) not in raw_roots),
                "outputs": outputs,
            }
    return stages


@pytest.mark.slow
def test_snakemake_and_dvc_run_the_same_commands_on_the_same_files():
    for profile, params, dvc_file, targets in (("demo", "params/demo.yaml", "dvc.yaml", ["demo"]),
                                               ("paper", "params.yaml", "paper/dvc.yaml",
                                                ["reproduce_all", "reproduce_released"])):
        plan = build_plan(ROOT / params)
        raw = {f for f in plan.provided_inputs() if not (ROOT / f).exists()}  # dataset folders, checkpoint files
        smk = {outs: {k: v for k, v in job.items() if k != "rule"} for outs, job in _snakemake_jobs(*targets).items()}
        dvc = _dvc_stages(dvc_file, raw)
        assert set(smk) == set(dvc) == {tuple(sorted(j.outputs)) for j in plan.jobs.values()}, profile
        for outs in smk:
            assert smk[outs] == dvc[outs], (profile, outs)


@pytest.mark.slow
def test_every_table_target_dry_runs_and_a_missing_dataset_stops_the_run_at_once(tmp_path):
    data = _params()
    for spec in data["datasets"].values():
        spec["root"] = str(tmp_path / "raw" / spec["adapter"])
        spec.pop("source", None)  # folders filled by hand (no acquire job; tests/test_acquire_dag.py has those)
    data["paths"] = {k: str(tmp_path / k) for k in ("shards", "runs", "results")}
    path = _write(tmp_path, data)
    plan = build_plan(path)
    targets = [t for t in plan.targets if t.startswith("reproduce_table")] + ["reproduce_fig3", "reproduce_all"]
    listed = _snakemake_jobs(*targets, "--config", f"params={path}")
    assert {tuple(sorted(j.outputs)) for t in targets for j in plan.closure(plan.targets[t])} <= set(listed)
    r = subprocess.run([str(BIN / "snakemake"), "--cores", "1", "reproduce_table8", "--config", f"params={path}"],
                       capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=300)
    assert r.returncode != 0
    for ds in ("cremad", "ravdess", "enterface", "voxceleb2"):
        assert f"dataset folder for '{ds}' not found" in r.stderr, r.stderr[-3000:]
    assert "ferv39k" not in r.stderr  # only what the target needs
    assert not any((tmp_path / k).exists() for k in ("shards", "runs", "results"))  # no job started


# -- the whole DAG on a tiny profile: runs, re-runs nothing, re-runs only what a changed setting touches --------


def _tiny_profile(tmp_path: Path) -> Path:
    data = copy.deepcopy(_params("params/demo.yaml"))
    data["demo_data"] = {"out": str(tmp_path / "demo"), "args": {"tiny": True, "seed": 0}}
    for name, spec in data["datasets"].items():
        spec["root"] = str(tmp_path / "demo" / name)
    data["datasets"]["dfew"]["folds"] = [1, 2]
    data["paths"] = {k: str(tmp_path / k) for k in ("shards", "runs", "results")}
    data["mlflow"]["experiment"] = "tiny"
    pre = data["pretrain"]["defaults"]
    pre.update(epochs=1, warmup_epochs=0, batch_size=2, preview_every_epochs=0, num_workers=0)
    pre["arch_kwargs"].update(img_size=64, region_size=[2, 2, 2], mask_ratio=0.75)
    ft = data["finetune"]["defaults"]
    ft.update(epochs=2, warmup_epochs=0, batch_size=4, num_workers=0, max_steps_per_epoch=3)
    ft["arch_kwargs"].update(img_size=64, region_size=[2, 2, 2])
    return _write(tmp_path, data, "tiny.yaml")


def _run(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "snakemake"), *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=900)


@pytest.mark.slow
def test_tiny_demo_runs_end_to_end_then_reruns_only_what_changed(tmp_path):
    from mlflow.tracking import MlflowClient

    tiny = _tiny_profile(tmp_path)
    env = {**ENV, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db", "MAEDFER_CACHE": os.environ.get(
        "MAEDFER_CACHE", str(Path.home() / ".cache" / "maedfer"))}
    cfg = ["--config", f"demo_params={tiny}", f"logs={tmp_path}/logs"]
    r = _run("--cores", "2", "demo", *cfg, env=env)
    assert r.returncode == 0, r.stderr[-4000:]
    table = (tmp_path / "results" / "table5" / "table5.md").read_text()
    assert "MAE-DFER" in table and "demo" in table.lower()
    for name in ("fig4/fig4-mask0.75.png", "fig4/fig4-mask0.90.png", "fig5.png", "curves-mae_dfer-dfew.png",
                 "confusion-mae_dfer-dfew.png"):
        assert (tmp_path / "results" / "figures" / name).stat().st_size > 1000, name
    metrics = json.loads((tmp_path / "runs/finetune/mae_dfer/dfew/fold2/metrics.json").read_text())
    assert 0 <= metrics["uar"] <= 1 and metrics["num_samples"] > 0

    report = _run("--report", str(tmp_path / "report.html"), "demo", *cfg, env=env)  # one self-contained page
    assert report.returncode == 0, report.stderr[-4000:]
    check_report(tmp_path / "report.html")  # tables, figures, confusion matrix, curves, captions with settings

    again = _run("-n", "demo", *cfg, env=env)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    data = yaml.safe_load(tiny.read_text())
    data["finetune"]["defaults"]["base_lr"] = 2e-3
    tiny.write_text(yaml.safe_dump(data))
    dry = _run("-n", "demo", *cfg, env=env)
    rules = set(re.findall(r"^(?:local)?rule (\S+):$", dry.stdout, re.M))
    outputs = {tuple(sorted(m.split(", "))) for m in re.findall(r"^    output: (.*)$", dry.stdout, re.M)}
    plan = build_plan(tiny)
    assert "demo" in rules and outputs == {tuple(sorted(plan.jobs[name].outputs)) for name in (
        "finetune_mae_dfer_dfew_fold1", "finetune_mae_dfer_dfew_fold2", "aggregate_table5", "fig5", "confusion",
        "curves")}, dry.stdout
    pretrained = (tmp_path / "runs/pretrain/mae_dfer/model.pt").stat().st_mtime_ns
    fold_model = (tmp_path / "runs/finetune/mae_dfer/dfew/fold1/model.pt").stat().st_mtime_ns
    rerun = _run("--cores", "2", "demo", *cfg, env=env)  # the fold runs start afresh, not from the old state
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert (tmp_path / "runs/pretrain/mae_dfer/model.pt").stat().st_mtime_ns == pretrained
    assert (tmp_path / "runs/finetune/mae_dfer/dfew/fold1/model.pt").stat().st_mtime_ns != fold_model
    fold_log = Path(f"{tmp_path}/logs/{tmp_path}/runs/finetune/mae_dfer/dfew/fold1.log")  # the job's stderr
    assert "settings differ (base_lr)" in fold_log.read_text()

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    train = client.get_experiment_by_name("tiny-train")
    folds = [r for r in client.search_runs([train.experiment_id]) if "fold" in r.data.tags]
    assert sorted(r.data.tags["fold"] for r in folds) == ["1", "1", "2", "2"]  # every training run is kept
    assert all("test/uar" in r.data.metrics for r in folds)

    # The table's fold runs through the REST API of an MLflow server over the store the run wrote.
    with running_mlflow_server(env["MLFLOW_TRACKING_URI"], tmp_path) as base:
        exp = rest_json(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=tiny")["experiment"]
        parents = rest_json(f"{base}/api/2.0/mlflow/runs/search",
                            {"experiment_ids": [exp["experiment_id"]], "filter": "attributes.run_name = 'table5'"})
        assert len(parents["runs"]) == 1
        parent = parents["runs"][0]["info"]["run_id"]
        children = rest_json(f"{base}/api/2.0/mlflow/runs/search",
                             {"experiment_ids": [exp["experiment_id"]],
                              "filter": f"tags.`mlflow.parentRunId` = '{parent}'"})["runs"]
        assert len(children) == 2
        for run in children:
            tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
            got = {m["key"]: m["value"] for m in run["data"]["metrics"]}
            want = json.loads((tmp_path / f"runs/finetune/mae_dfer/dfew/fold{tags['fold']}/metrics.json").read_text())
            assert got["test/uar"] == pytest.approx(want["uar"]) and got["test/war"] == pytest.approx(want["war"])


def test_slurm_profile_sizes_jobs_from_the_params_file():
    r = subprocess.run([str(BIN / "snakemake"), "--profile", "workflow/profiles/slurm", "-n", "-F", "reproduce_table5"],
                       capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    blocks = {}  # first output -> the job's block
    for block in re.split(r"\n(?=\[[^\n]*\]\n(?:local)?rule )", r.stdout):
        if m := re.search(r"^    output: ([^,\n]*)", block, re.M):
            blocks[m.group(1)] = block
    pretrain, fold1 = blocks["runs/paper/pretrain/mae_dfer/model.pt"], blocks[
        "runs/paper/finetune/mae_dfer/dfew/fold1/metrics.json"]
    assert "gpu=4" in pretrain and "runtime=4320" in pretrain
    assert "gpu=1" in fold1
    assert "torchrun --standalone --nproc_per_node=4 --max-restarts=2 -m pipeline.pretrain" in r.stdout


def test_workflow_jobs_lists_a_target_and_names_missing_datasets(tmp_path):
    data = _params()
    for spec in data["datasets"].values():
        spec["root"] = str(tmp_path / "raw" / spec["adapter"])
        spec.pop("source", None)  # a folder filled by hand
    path = _write(tmp_path, data)
    cmd = [str(BIN / "maedfer"), "workflow", "jobs", "--params", str(path), "--target", "reproduce_table6"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    jobs = json.loads(r.stdout)
    assert [j["name"] for j in jobs][-1] == "aggregate_table6" and len(jobs) == 7
    assert "dataset folder for 'ferv39k' not found" in r.stderr and "'dfew'" not in r.stderr
