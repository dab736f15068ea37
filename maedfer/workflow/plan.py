"""The DAG of a profile: every job (stage command, inputs, outputs, settings) that its tables need.

One plan feeds both orchestrators: the Snakefile defines one rule per job, and
:mod:`maedfer.workflow.dvc` writes the same jobs as DVC stages, so the two run identical commands
on identical files (a test compares ``snakemake --dry-run`` with DVC's resolved stages). Jobs are
shared: one pre-training feeds every fine-tuning that uses it, and a fold run used by several tables
(e.g. MAE-DFER on DFEW fold 1 in Tables 2-4, 9 and 11) is one job.

Stage commands read their settings from the params file at run time (``--params FILE`` plus the
pretraining / experiment name), so editing a setting never leaves a stale command behind; the
resolved settings are also attached to each job (Snakemake re-runs a job whose settings changed;
DVC tracks the same keys through ``params:``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maedfer.workflow.profile import PER_CLASS_TABLES, Profile, load_profile, settings_json

PYTHON = "python"  # the stage scripts run with the environment's python (README: activate .venv first)
PAPER_TABLE_CLASSES = ("table5", "table6", "table7")  # have a per-class companion (Tables 12-14)


@dataclass
class Job:
    name: str  # Snakemake rule name == DVC stage name
    stage: str  # demo_data | ingest | pretrain | finetune | aggregate | fig4 | fig5 | confusion | curves
    cmd: list[str]
    inputs: list[str]
    outputs: list[str]
    params_keys: list[str] = field(default_factory=list)  # params-file keys the job reads (DVC `params:`)
    settings: dict[str, Any] = field(default_factory=dict)  # resolved settings (Snakemake `params:`)
    resources: dict[str, Any] = field(default_factory=lambda: {"gpus": 0})
    raw_root: str | None = None  # ingest: the dataset folder the user provides (checked before a run)
    metrics: list[str] = field(default_factory=list)  # DVC metrics among the outputs
    plots: list[str] = field(default_factory=list)  # DVC confusion plots among the outputs

    @property
    def shell(self) -> str:
        return shlex.join(self.cmd)

    @property
    def settings_json(self) -> str:
        return settings_json(self.settings)


@dataclass
class Plan:
    profile: Profile
    params_file: str  # as written in commands (relative to the repository root)
    jobs: dict[str, Job] = field(default_factory=dict)
    targets: dict[str, list[str]] = field(default_factory=dict)  # target name -> files

    def add(self, job: Job) -> Job:
        if job.name not in self.jobs:
            # torch's intra-op threads per process, fixed by the params file rather than by whoever runs the job:
            # float reductions depend on the thread count, so this is what makes a Snakemake run and a DVC run
            # (or a laptop and a cluster node) produce the same weights and the same table.
            procs = max(1, int(job.resources.get("gpus", 0)))
            threads = max(1, int(job.resources.get("cpus", 1)) // procs)
            job.cmd = ["env", f"OMP_NUM_THREADS={threads}", *job.cmd]
            script = next((a for a in job.cmd if a.startswith("pipeline/") and a.endswith(".py")), None)
            if script is not None:  # the stage's code: editing it re-runs the stage (Snakemake and DVC)
                job.inputs.append(script)
            self.jobs[job.name] = job
        return self.jobs[job.name]

    def producer(self, path: str) -> Job | None:
        for job in self.jobs.values():
            if path in job.outputs:
                return job
        return None

    def closure(self, files: list[str]) -> list[Job]:
        """The jobs needed to make ``files`` (dependencies first)."""
        seen: dict[str, Job] = {}

        def visit(path: str) -> None:
            job = self.producer(path)
            if job is None or job.name in seen:
                return
            for dep in job.inputs:
                visit(dep)
            seen[job.name] = job

        for f in files:
            visit(f)
        return list(seen.values())

    def missing_roots(self, files: list[str]) -> list[tuple[str, str]]:
        """(dataset, root) of every raw dataset folder that the jobs making ``files`` need and that is absent."""
        out = []
        for job in self.closure(files):
            if job.raw_root is not None and not Path(job.raw_root).exists() and not Path(job.outputs[0]).exists():
                out.append((job.name.removeprefix("ingest_"), job.raw_root))
        return out


def _stage_cmd(script: str, gpus: int) -> list[str]:
    if gpus > 1:  # one process per GPU; DDP inside the stage (maedfer.train.distributed)
        return ["torchrun", "--standalone", f"--nproc_per_node={gpus}", script]
    return [PYTHON, script]


class _Builder:
    def __init__(self, profile: Profile, params_file: str) -> None:
        self.p = profile
        self.plan = Plan(profile=profile, params_file=params_file)
        self.tracking = profile.mlflow.get("tracking", True)
        self.train_experiment = f"{profile.mlflow['experiment']}-train"

    def _tracking_args(self) -> list[str]:
        return [] if self.tracking else ["--no-tracking"]

    # -- stages -------------------------------------------------------------------------------------------------
    def demo_data(self) -> Job | None:
        spec = self.p.demo_data
        if spec is None:
            return None
        args = []
        for k, v in sorted(spec.get("args", {}).items()):
            if isinstance(v, bool):  # a switch such as --tiny
                args += [f"--{k.replace('_', '-')}"] if v else []
            else:
                args += [f"--{k.replace('_', '-')}", str(v)]
        out = spec["out"]
        return self.plan.add(Job(
            name="demo_data", stage="demo_data", cmd=["maedfer", "demo-data", "--out", out, *args],
            inputs=[], outputs=[f"{out}/manifest.json"], params_keys=["demo_data"], settings=spec,
        ))

    def ingest(self, dataset: str) -> Job:
        spec = self.p.datasets[dataset]
        root = spec["root"]
        demo = self.demo_data()
        produced = demo is not None and Path(root).is_relative_to(Path(self.p.demo_data["out"]))
        index = self.p.index_path(dataset)
        return self.plan.add(Job(
            name=f"ingest_{dataset}", stage="ingest",
            cmd=[PYTHON, "pipeline/ingest.py", "--params", self.plan.params_file, "--dataset", dataset,
                 "--root", root, "--out", str(Path(index).parent)],
            inputs=[demo.outputs[0]] if produced else [root],
            outputs=[index], params_keys=[f"datasets.{dataset}"], settings=spec,
            raw_root=None if produced else root,
        ))

    def pretrain(self, name: str) -> Job:
        settings = self.p.pretrain_settings(name)
        resources = self.p.resources("pretrain")
        data = self.ingest(self.p.data["pretrain"]["dataset"])
        out = self.p.pretrain_dir(name)
        return self.plan.add(Job(
            name=f"pretrain_{name}", stage="pretrain",
            cmd=[*_stage_cmd("pipeline/pretrain.py", resources.get("gpus", 0)), "--params", self.plan.params_file,
                 "--pretraining", name, "--index", data.outputs[0], "--out", out,
                 "--experiment", self.train_experiment, *self._tracking_args()],
            inputs=[data.outputs[0]], outputs=[f"{out}/model.pt", f"{out}/history.json"],
            params_keys=["pretrain.defaults", f"pretrain.runs.{name}"], settings=settings, resources=resources,
        ))

    def finetune(self, experiment: str, dataset: str, fold: int) -> Job:
        settings = self.p.finetune_settings(experiment, dataset)
        resources = self.p.resources("finetune")
        data = self.ingest(dataset)
        out = self.p.finetune_dir(experiment, dataset, fold)
        inputs = [data.outputs[0]]
        init: list[str] = []
        keys = ["finetune.defaults", f"finetune.experiments.{experiment}", f"datasets.{dataset}"]
        if settings["init"] is not None:
            pre = self.pretrain(settings["init"])
            inputs.append(pre.outputs[0])
            init = ["--init", pre.outputs[0]]
            keys += ["pretrain.defaults", f"pretrain.runs.{settings['init']}"]
        return self.plan.add(Job(
            name=f"finetune_{experiment}_{dataset}_fold{fold}", stage="finetune",
            cmd=[*_stage_cmd("pipeline/finetune.py", resources.get("gpus", 0)), "--params", self.plan.params_file,
                 "--experiment", experiment, "--dataset", dataset, "--fold", str(fold), "--index", data.outputs[0],
                 *init, "--out", out, "--group", f"{self.p.name}/{experiment}/{dataset}",
                 "--mlflow-experiment", self.train_experiment, *self._tracking_args()],
            inputs=inputs,
            outputs=[f"{out}/metrics.json", f"{out}/predictions.csv", f"{out}/model.pt", f"{out}/history.json"],
            params_keys=keys, settings=settings, resources=resources,
        ))

    def aggregate(self, table: str) -> Job:
        spec = self.p.tables[table]
        out = self.p.results_dir(table)
        rows, inputs, plots = [], [], []
        for ds, folds in self.p.table_folds(table).items():
            for row, experiment in spec["rows"].items():
                dirs = [str(Path(self.finetune(experiment, ds, k).outputs[0]).parent) for k in folds]
                inputs += [f"{d}/metrics.json" for d in dirs] + [f"{d}/predictions.csv" for d in dirs]
                rows += ["--row", f"{row}:{ds}:{','.join(dirs)}"]
                plots.append(f"{out}/confusion/{row}-{ds}.csv")
        outputs = [f"{out}/{table}.{ext}" for ext in ("md", "csv", "tex")]
        if table in PAPER_TABLE_CLASSES:
            outputs += [f"{out}/{table}_per_class.{ext}" for ext in ("md", "csv", "tex")]
        metrics = [f"{out}/metrics.json"]
        tracking = ["--experiment", self.p.mlflow["experiment"]] if self.tracking else ["--no-tracking"]
        return self.plan.add(Job(
            name=f"aggregate_{table}", stage="aggregate",
            cmd=[PYTHON, "pipeline/aggregate.py", "--table", table, "--out", out, *rows, "--profile", self.p.name,
                 *tracking],
            inputs=inputs, outputs=outputs + metrics + plots, params_keys=[f"tables.{table}"], settings=spec,
            metrics=metrics, plots=plots,
        ))

    def _figure_tracking(self) -> list[str]:
        return ["--mlflow-experiment", self.p.mlflow["experiment"]] if self.tracking else []

    def fig4(self) -> Job | None:
        spec = self.p.figures.get("fig4")
        if spec is None:
            return None
        pre = self.pretrain(spec["pretraining"])
        data = self.ingest(self.p.data["pretrain"]["dataset"])
        out = self.p.results_dir("figures", "fig4")
        ratios = spec.get("ratios", [0.75, 0.9])
        return self.plan.add(Job(
            name="fig4", stage="fig4",
            cmd=[PYTHON, "pipeline/figures.py", "fig4", "--checkpoint", pre.outputs[0], "--index", data.outputs[0],
                 "--out", out, "--ratios", *[str(r) for r in ratios], "--clip-index", str(spec.get("clip_index", 0)),
                 "--seed", str(spec.get("seed", 0)), *self._figure_tracking()],
            inputs=[pre.outputs[0], data.outputs[0]],
            outputs=[f"{out}/fig4-mask{r:.2f}.png" for r in ratios] + [f"{out}/fig4.json"],
            params_keys=["figures.fig4"], settings=spec,
        ))

    def fig5(self) -> list[Job]:
        spec = self.p.figures.get("fig5")
        if spec is None:
            return []
        experiment, ds, fold = spec["experiment"], spec["dataset"], spec["fold"]
        run = self.finetune(experiment, ds, fold)
        run_dir = str(Path(run.outputs[0]).parent)
        figs = self.p.results_dir("figures")
        stride = str(self.p.datasets[ds].get("stride", 4))
        jobs = [self.plan.add(Job(
            name="fig5", stage="fig5",
            cmd=[PYTHON, "pipeline/figures.py", "fig5", "--checkpoint", f"{run_dir}/model.pt", "--index",
                 run.inputs[0], "--fold", str(fold), "--stride", stride, "--out", f"{figs}/fig5.png",
                 *self._figure_tracking()],
            inputs=[f"{run_dir}/model.pt", run.inputs[0]], outputs=[f"{figs}/fig5.png", f"{figs}/fig5.npz"],
            params_keys=["figures.fig5"], settings=spec,
        ))]
        folds = [str(Path(self.finetune(experiment, ds, k).outputs[0]).parent) for k in self.p.folds(ds)]
        tag = f"{experiment}-{ds}"
        jobs.append(self.plan.add(Job(
            name="confusion", stage="confusion",
            cmd=[PYTHON, "pipeline/figures.py", "confusion", "--runs", *folds, "--out", f"{figs}/confusion-{tag}.png",
                 *self._figure_tracking()],
            inputs=[f"{d}/{f}" for d in folds for f in ("metrics.json", "predictions.csv")],
            outputs=[f"{figs}/confusion-{tag}.png", f"{figs}/confusion-{tag}.json"], params_keys=["figures.fig5"],
            settings=spec,
        )))
        jobs.append(self.plan.add(Job(
            name="curves", stage="curves",
            cmd=[PYTHON, "pipeline/figures.py", "curves", "--runs", *folds, "--out", f"{figs}/curves-{tag}.png",
                 "--title", f"{experiment} on {ds}: fine-tuning per fold", *self._figure_tracking()],
            inputs=[f"{d}/history.json" for d in folds], outputs=[f"{figs}/curves-{tag}.png"],
            params_keys=["figures.fig5"], settings=spec,
        )))
        return jobs

    def build(self) -> Plan:
        targets = self.plan.targets
        every: list[str] = []
        for table in self.p.tables:
            job = self.aggregate(table)
            targets[f"reproduce_{table}"] = job.outputs
            every += job.outputs
        for alias, table in PER_CLASS_TABLES.items():
            if table in self.p.tables:
                targets[f"reproduce_{alias}"] = [o for o in self.plan.jobs[f"aggregate_{table}"].outputs
                                                 if "_per_class." in o]
        if (f4 := self.fig4()) is not None:
            targets["reproduce_fig4"] = f4.outputs
            every += f4.outputs
        if f5 := self.fig5():
            targets["reproduce_fig5"] = [o for j in f5 for o in j.outputs]
            every += targets["reproduce_fig5"]
        targets["reproduce_all"] = every
        return self.plan


def build_plan(params_file: str | Path) -> Plan:
    """Load and validate a params file, then lay out every job its tables and figures need."""
    profile = load_profile(params_file)
    return _Builder(profile, str(params_file)).build()


def missing_root_message(dataset: str, root: str) -> str:
    """One line: the folder a target needs, and how to obtain the dataset."""
    from maedfer.workflow.datasets_help import how_to_obtain

    return (f"{root}: dataset folder for {dataset!r} not found; {how_to_obtain(dataset)} "
            f"Put it there (or set datasets.{dataset}.root in the params file).")
