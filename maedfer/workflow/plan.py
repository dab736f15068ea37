"""The DAG of a profile: every job (stage command, inputs, outputs, settings) that its tables need.

One plan feeds both orchestrators: the Snakemake rules in ``workflow/rules/`` look each job up here, and
:mod:`maedfer.workflow.dvc` writes the same jobs as DVC stages, so the two run identical commands
on identical files (a test compares ``snakemake --dry-run`` with DVC's resolved stages). Jobs are
shared: one pre-training feeds every fine-tuning that uses it, and a fold run used by several tables
(e.g. MAE-DFER on DFEW fold 1 in Tables 2-4, 9 and 11) is one job.

Every stage runs as ``python -m pipeline.<stage>`` from the repository root (``torchrun --standalone
--nproc_per_node=N -m pipeline.<stage>`` on N > 1 GPUs); its code file ``pipeline/<stage>.py`` is an
input, so editing it re-runs the stage. Stage commands read their settings from the params file at
run time (``--params FILE`` plus the pretraining / experiment name), so editing a setting never leaves a
stale command behind; the resolved settings are also attached to each job (Snakemake re-runs a job
whose settings changed; DVC tracks the same keys through ``params:``).

Jobs of the same shape (every ingest, pre-training or fine-tuning) come from one
:class:`~maedfer.workflow.jobs.Template` filled with an ``item`` (dataset, fold, ...): DVC writes them
as one ``foreach`` stage, Snakemake runs them through one rule with wildcards.

Imports neither torch nor mlflow: the Snakefile loads it at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maedfer.results.dvc_names import curves_file_name
from maedfer.workflow import released
from maedfer.workflow.jobs import PYTHON, Job, Plan, Template
from maedfer.workflow.jobs import stage_cmd as _stage_cmd
from maedfer.workflow.profile import PER_CLASS_TABLES, Profile, load_profile, own_data_table

ACQUIRED_MARKER = ".acquired.json"  # maedfer.data.acquire.bring.MARKER_NAME (not imported: keeps parsing light)


def source_paths(dataset: str, source: dict[str, Any]) -> dict[str, str]:
    """The local folders and files a ``source`` names -> the one-line message when one is absent."""
    paths = [source["folder"]] if "folder" in source else []
    for f in source.get("files", []):
        spec = f if isinstance(f, dict) else ({"url": f} if f.lower().startswith(("http://", "https://")) else
                                              {"path": f})
        paths += [spec["path"]] if "path" in spec else [p for p in spec.get("parts", []) if "://" not in p]
    return {p: f"{p}: named by datasets.{dataset}.source but not found; put it there or correct the source "
               f"in the params file" for p in paths}

__all__ = ["PAPER_TABLE_CLASSES", "PYTHON", "Job", "Plan", "Template", "build_plan", "missing_root_message"]

PAPER_TABLE_CLASSES = ("table5", "table6", "table7")  # have a per-class companion (Tables 12-14)


def _templated(name: str, stage: str, template: Template, item: dict[str, Any], wildcards: dict[str, str],
               **kw: Any) -> Job:
    return Job(name=name, stage=stage, rule=stage, wildcards=wildcards, template=template, item=item,
               **template.fill(item), **kw)


class _Builder:
    def __init__(self, profile: Profile, params_file: str) -> None:
        self.p = profile
        self.plan = Plan(profile=profile, params_file=params_file)
        self.tracking = profile.mlflow.get("tracking", True)
        self.train_experiment = f"{profile.mlflow['experiment']}-train"
        # the roots the Snakemake output patterns start with ({shards}, {runs}, {results})
        self.shards = str(Path(profile.index_path("x")).parent.parent)
        self.runs = str(Path(profile.pretrain_dir("x")).parent.parent)
        self.results = str(Path(profile.results_dir("x")).parent)

    def _mlflow_args(self) -> list[str]:
        return ["--mlflow-experiment", self.train_experiment, *([] if self.tracking else ["--no-tracking"])]

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
            name="demo_data", stage="demo_data", rule="demo_data", wildcards={"demo": str(Path(out))},
            cmd=["maedfer", "demo-data", "--out", out, *args], inputs=[], outputs=[f"{Path(out)}/manifest.json"],
            params_keys=["demo_data"], settings=spec,
        ))

    def acquire(self, dataset: str) -> Job:
        """The job that fills the dataset's root from its ``source`` (writes ``<root>/.acquired.json``)."""
        spec = self.p.datasets[dataset]
        template = Template(
            group="acquire", key="{dataset}",
            cmd=(*_stage_cmd("acquire", 0), "--params", self.plan.params_file, "--dataset", "{dataset}",
                 "--out", "{root}"),
            inputs=(), outputs=(f"{{root}}/{ACQUIRED_MARKER}",), params_keys=("datasets.{dataset}.source",))
        item = {"dataset": dataset, "root": spec["root"]}
        return self.plan.add(_templated(
            f"acquire_{dataset}", "acquire", template, item, {"acquire": str(Path(spec["root"]))},
            settings=spec["source"], provided=source_paths(dataset, spec["source"]),
        ))

    def ingest(self, dataset: str) -> Job:
        spec = self.p.datasets[dataset]
        root = spec["root"]
        demo = self.demo_data()
        produced = demo is not None and Path(root).is_relative_to(Path(self.p.demo_data["out"]))
        if "source" in spec and not produced:
            marker = self.acquire(dataset).outputs[0]
            return self._ingest(dataset, spec, marker, None)
        return self._ingest(dataset, spec, demo.outputs[0] if produced else root, None if produced else root)

    def _ingest(self, dataset: str, spec: dict[str, Any], source: str, raw_root: str | None) -> Job:
        root = spec["root"]
        template = Template(
            group="ingest", key="{dataset}",
            cmd=(*_stage_cmd("ingest", 0), "--params", self.plan.params_file, "--dataset", "{dataset}",
                 "--root", "{root}", "--out", str(Path(self.p.index_path("{dataset}")).parent)),
            inputs=("{source}",), params_keys=("datasets.{dataset}",),
            outputs=(self.p.index_path("{dataset}"), f"{Path(self.p.index_path('{dataset}')).parent}/report.json"))
        item = {"dataset": dataset, "root": root, "source": source}
        return self.plan.add(_templated(
            f"ingest_{dataset}", "ingest", template, item, {"shards": self.shards, "dataset": dataset},
            settings={k: v for k, v in spec.items() if k != "source"}, raw_root=raw_root,
        ))

    def pretrain(self, name: str) -> Job:
        resources = self.p.resources("pretrain")
        data = self.ingest(self.p.data["pretrain"]["dataset"])
        out = self.p.pretrain_dir("{pretraining}")
        template = Template(
            group="pretrain", key="{pretraining}",
            cmd=(*_stage_cmd("pretrain", resources.get("gpus", 0)), "--params", self.plan.params_file,
                 "--pretraining", "{pretraining}", "--index", data.outputs[0], "--out", out, *self._mlflow_args()),
            inputs=(data.outputs[0],), outputs=(f"{out}/model.pt", f"{out}/history.json"),
            params_keys=("pretrain.defaults", "pretrain.runs.{pretraining}"))
        return self.plan.add(_templated(
            f"pretrain_{name}", "pretrain", template, {"pretraining": name}, {"runs": self.runs, "pretraining": name},
            settings=self.p.pretrain_settings(name), resources=resources,
        ))

    def finetune(self, experiment: str, dataset: str, fold: int) -> Job:
        settings = self.p.finetune_settings(experiment, dataset)
        resources = self.p.resources("finetune")
        index = self.ingest(dataset).outputs[0]
        out = self.p.finetune_dir("{experiment}", "{dataset}", "{fold}")
        item: dict[str, Any] = {"experiment": experiment, "dataset": dataset, "fold": fold}
        inputs, init, provided = [self.p.index_path("{dataset}")], [], {}
        keys = ["finetune.defaults", "finetune.experiments.{experiment}", "datasets.{dataset}"]
        group = "finetune"
        if settings["init"] is not None and (spec := self.p.released_encoder(settings["init"])) is not None:
            # a released encoder: its file (provided by the user, or downloaded) instead of a pre-training run
            item.update(pretraining=settings["init"], init=spec["path"])
            provided = released.checkpoint_file(self, spec, f"pretrain.runs.{settings['init']}.checkpoint",
                                                f"download_{settings['init']}")
            inputs.append("{init}")
            init = ["--init", "{init}"]
            keys += ["pretrain.defaults", "pretrain.runs.{pretraining}"]
            group = "finetune_released"
        elif settings["init"] is not None:
            item["pretraining"] = settings["init"]
            pre = self.pretrain(settings["init"])
            init_file = f"{self.p.pretrain_dir('{pretraining}')}/model.pt"
            assert init_file.format(**item) == pre.outputs[0] and inputs[0].format(**item) == index
            inputs.append(init_file)
            init = ["--init", init_file]
            keys += ["pretrain.defaults", "pretrain.runs.{pretraining}"]
        template = Template(
            group=group if init else "finetune_scratch", key="{experiment}-{dataset}-fold{fold}",
            cmd=(*_stage_cmd("finetune", resources.get("gpus", 0)), "--params", self.plan.params_file,
                 "--experiment", "{experiment}", "--dataset", "{dataset}", "--fold", "{fold}", "--index", inputs[0],
                 *init, "--out", out, "--group", f"{self.p.name}/{{experiment}}/{{dataset}}", *self._mlflow_args()),
            inputs=tuple(inputs),
            outputs=(f"{out}/metrics.json", f"{out}/predictions.csv", f"{out}/model.pt", f"{out}/history.json"),
            params_keys=tuple(keys))
        return self.plan.add(_templated(
            f"finetune_{experiment}_{dataset}_fold{fold}", "finetune", template, item,
            {"runs": self.runs, "experiment": experiment, "dataset": dataset, "fold": str(fold)},
            settings=settings, resources=resources, provided=provided,
        ))

    def aggregate(self, table: str) -> Job:
        spec = self.p.tables[table]
        out = self.p.results_dir(table)
        rows, inputs, curves = [], [], {}
        own = own_data_table(self.p, table)
        for ds, folds in self.p.table_folds(table).items():
            for row, experiment in spec["rows"].items():
                dirs = [str(Path(self.finetune(experiment, ds, k).outputs[0]).parent) for k in folds]
                inputs += [f"{d}/{f}" for f in ("metrics.json", "predictions.csv", "history.json") for d in dirs]
                key = f"{row}=none" if own else row  # own data: no paper row to compare with
                rows += ["--row", f"{key}:{ds}:{','.join(dirs)}"]
                # each fold's history.json as a CSV (maedfer.results.dvc_files): DVC's training-curve plots
                curves[f"{table} {row} {ds}"] = [f"{out}/curves/{curves_file_name(row, ds, k)}" for k in folds]
        outputs = [f"{out}/{table}.{ext}" for ext in ("md", "csv", "tex")]
        per_class = table in PAPER_TABLE_CLASSES
        if per_class:
            outputs += [f"{out}/{table}_per_class.{ext}" for ext in ("md", "csv", "tex")]
        outputs += [f"{out}/{table}.html", f"{out}/curves"]  # the views as HTML (Snakemake report); curve CSVs
        metrics = [f"{out}/metrics.json"]
        plots = [f"{out}/confusion"]  # one CSV per row and dataset (maedfer.results.dvc_files)
        tracking = ["--mlflow-experiment", self.p.mlflow["experiment"]] if self.tracking else ["--no-tracking"]
        return self.plan.add(Job(
            name=f"aggregate_{table}", stage="aggregate", rule="aggregate_per_class" if per_class else "aggregate",
            wildcards={"results": self.results, "table": table},
            cmd=[*_stage_cmd("aggregate", 0), "--table", table, "--out", out, *rows, "--profile", self.p.name,
                 *tracking],
            inputs=inputs, outputs=outputs + metrics + plots, params_keys=[f"tables.{table}"], settings=spec,
            metrics=metrics, plots=plots, curves=curves,
        ))

    def _figure_tracking(self) -> list[str]:
        return ["--mlflow-experiment", self.p.mlflow["experiment"]] if self.tracking else []

    def _figure(self, name: str, wildcards: dict[str, str], **kw: Any) -> Job:
        return self.plan.add(Job(name=name, stage=name, rule=name, wildcards={"results": self.results, **wildcards},
                                 params_keys=[f"figures.{'fig4' if name == 'fig4' else 'fig5'}"], **kw))

    def fig4(self) -> Job | None:
        spec = self.p.figures.get("fig4")
        if spec is None:
            return None
        pre = self.pretrain(spec["pretraining"])
        data = self.ingest(self.p.data["pretrain"]["dataset"])
        out = self.p.results_dir("figures", "fig4")
        ratios = spec.get("ratios", [0.75, 0.9])
        return self._figure(
            "fig4", {},
            cmd=[*_stage_cmd("figures", 0), "fig4", "--checkpoint", pre.outputs[0], "--index", data.outputs[0],
                 "--out", out, "--ratios", *[str(r) for r in ratios], "--clip-index", str(spec.get("clip_index", 0)),
                 "--seed", str(spec.get("seed", 0)), *self._figure_tracking()],
            inputs=[pre.outputs[0], data.outputs[0]],
            outputs=[out],  # fig4-mask<ratio>.png per ratio, fig4.json
            settings=spec,
        )

    def fig5(self) -> list[Job]:
        spec = self.p.figures.get("fig5")
        if spec is None:
            return []
        experiment, ds, fold = spec["experiment"], spec["dataset"], spec["fold"]
        run = self.finetune(experiment, ds, fold)
        run_dir = str(Path(run.outputs[0]).parent)
        figs = self.p.results_dir("figures")
        stride = str(self.p.params.datasets[ds].stride)
        jobs = [self._figure(
            "fig5", {},
            cmd=[*_stage_cmd("figures", 0), "fig5", "--checkpoint", f"{run_dir}/model.pt", "--index",
                 run.inputs[0], "--fold", str(fold), "--stride", stride, "--out", f"{figs}/fig5.png",
                 *self._figure_tracking()],
            inputs=[f"{run_dir}/model.pt", run.inputs[0]], outputs=[f"{figs}/fig5.png", f"{figs}/fig5.npz"],
            settings=spec,
        )]
        folds = [str(Path(self.finetune(experiment, ds, k).outputs[0]).parent) for k in self.p.folds(ds)]
        tag = f"{experiment}-{ds}"
        names = {"experiment": experiment, "dataset": ds}
        jobs.append(self._figure(
            "confusion", names,
            cmd=[*_stage_cmd("figures", 0), "confusion", "--runs", *folds, "--out", f"{figs}/confusion-{tag}.png",
                 *self._figure_tracking()],
            inputs=[f"{d}/{f}" for d in folds for f in ("metrics.json", "predictions.csv")],
            outputs=[f"{figs}/confusion-{tag}.png", f"{figs}/confusion-{tag}.json"], settings=spec,
        ))
        jobs.append(self._figure(
            "curves", names,
            cmd=[*_stage_cmd("figures", 0), "curves", "--runs", *folds, "--out", f"{figs}/curves-{tag}.png",
                 "--title", f"{experiment} on {ds}: fine-tuning per fold", *self._figure_tracking()],
            inputs=[f"{d}/history.json" for d in folds], outputs=[f"{figs}/curves-{tag}.png"], settings=spec,
        ))
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
        evaluated = [released.evaluate_released(self, ds) for ds in self.p.released_finetuned]
        for job in evaluated:
            targets[f"evaluate_released_{job.wildcards['dataset']}"] = job.outputs
        if evaluated:
            targets["reproduce_released"] = [o for job in evaluated for o in job.outputs]
        return self.plan


def build_plan(params_file: str | Path) -> Plan:
    """Load and validate a params file, then lay out every job its tables and figures need."""
    profile = load_profile(params_file)
    return _Builder(profile, str(params_file)).build()


def missing_root_message(dataset: str, root: str) -> str:
    """One line: the folder a target needs, and how to obtain the dataset."""
    from maedfer.workflow.datasets_help import how_to_obtain

    return (f"{root}: dataset folder for {dataset!r} not found; {how_to_obtain(dataset)} "
            f"Put it there (or set datasets.{dataset}.root in the params file, or datasets.{dataset}.source to have "
            "the DAG fetch it: README, Getting the data).")
