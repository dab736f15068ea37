"""A params file (params.yaml, params/demo.yaml) loaded, validated and resolved into stage settings.

:func:`load_profile` checks the file against :mod:`maedfer.workflow.schema` and then every cross
reference and every run's recipe values (:mod:`maedfer.settings.validate`), raising
:class:`ParamsError` with one line that names the file and the bad key. The
:class:`Profile` answers what each stage needs: the resolved settings of a pretraining or of a
fine-tuning experiment on a dataset, the folds of a table, and where every output lives.

Imports neither torch nor mlflow: the Snakefile loads it at start-up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from maedfer.settings import FinetuneConfig, PretrainConfig
from maedfer.settings import resolve as _resolve
from maedfer.settings.arch_names import PRETRAIN_PREFIX, is_pretrain_arch
from maedfer.settings.params import Params
from maedfer.settings.resolve import recipe_problems
from maedfer.settings.validate import recipe_value_problems
from maedfer.workflow.schema import SCHEMA

RELEASED_ENTRY_KEYS = frozenset({"checkpoint", "arch", "arch_kwargs"})  # a released pretraining entry's keys
PER_CLASS_TABLES = {"table12": "table5", "table13": "table6", "table14": "table7"}  # made with 5-7


class ParamsError(ValueError):
    """A params file that does not validate; the message names the file and the key."""


def _key_path(path: Any) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


@dataclass(frozen=True)
class Profile:
    """A validated params file: its raw mapping (``data``), its typed view (``params``) and what stages ask."""

    path: Path
    data: dict[str, Any]
    params: Params

    # -- names ------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The profile name (``profile``: paper, demo)."""
        return self.data["profile"]

    @property
    def datasets(self) -> dict[str, dict[str, Any]]:
        """The ``datasets`` section as written (name -> mapping)."""
        return self.data["datasets"]

    @property
    def tables(self) -> dict[str, dict[str, Any]]:
        """The ``tables`` section as written (name -> mapping)."""
        return self.data["tables"]

    @property
    def figures(self) -> dict[str, dict[str, Any]]:
        """The ``figures`` section as written (empty without one)."""
        return self.data.get("figures", {})

    @property
    def demo_data(self) -> dict[str, Any] | None:
        """The ``demo_data`` section as written (None without one)."""
        return self.data.get("demo_data")

    @property
    def mlflow(self) -> dict[str, Any]:
        """The ``mlflow`` section as written."""
        return self.data["mlflow"]

    def folds(self, dataset: str) -> list[int]:
        """The folds of a dataset (empty for an unlabelled one)."""
        return list(self.datasets[dataset].get("folds", []))

    def table_folds(self, table: str) -> dict[str, list[int]]:
        """Map each dataset of a table to its folds (``all`` expanded)."""
        spec = self.tables[table]["datasets"]
        return {d: (self.folds(d) if f == "all" else list(f)) for d, f in spec.items()}

    # -- paths --------------------------------------------------------------------------------------
    def _p(self, key: str, *parts: str) -> str:
        return str(Path(self.data["paths"][key], *parts))

    def index_path(self, dataset: str) -> str:
        """Where the dataset's shard index goes."""
        return self._p("shards", dataset, "index.parquet")

    def pretrain_dir(self, pretraining: str) -> str:
        """The run folder of a named pretraining."""
        return self._p("runs", "pretrain", pretraining)

    def finetune_dir(self, experiment: str, dataset: str, fold: int) -> str:
        """The fold run folder of an experiment on a dataset."""
        return self._p("runs", "finetune", experiment, dataset, f"fold{fold}")

    def results_dir(self, *parts: str) -> str:
        """A folder under the profile's results."""
        return self._p("results", *parts)

    # -- named entries ------------------------------------------------------------------------------
    def _require(self, name: str, names: Any, what: str, where: str) -> None:
        if name not in names:
            raise ParamsError(f"{self.path}: no {what} {name!r} in {where} ({', '.join(names)})")

    def require_dataset(self, dataset: str) -> None:
        """ParamsError naming the file unless ``dataset`` is in ``datasets``."""
        self._require(dataset, self.params.datasets, "dataset", "datasets")

    def require_pretraining(self, pretraining: str) -> None:
        """ParamsError naming the file unless ``pretraining`` is in ``pretrain.runs``."""
        self._require(pretraining, self.params.pretrain.runs, "pre-training", "pretrain.runs")

    def require_experiment(self, experiment: str) -> None:
        """ParamsError naming the file unless ``experiment`` is in ``finetune.experiments``."""
        self._require(experiment, self.params.finetune.experiments, "experiment", "finetune.experiments")

    # -- resolved settings ------------------------------------------------------------------------
    def pretrain_settings(self, pretraining: str) -> dict[str, Any]:
        """pretrain.defaults updated by the named run (its ``arch_kwargs`` merge into the defaults').

        A released entry's ``checkpoint`` is left out (see :meth:`released_encoder`): its settings say
        which model the file holds, so that the fine-tuning model follows it.
        """
        settings = _resolve.pretrain_settings(self.params, pretraining)
        settings.pop("checkpoint", None)
        return settings

    # -- released checkpoints -------------------------------------------------------------------------
    def released_encoder(self, pretraining: str) -> dict[str, Any] | None:
        """The ``checkpoint`` of a released pretraining entry (None: a pre-training run), ``path`` filled in.

        A URL without a ``path`` downloads to ``<paths.runs>/released/<pretraining>.pth``.
        """
        spec = self.params.pretrain.runs[pretraining].get("checkpoint")
        if spec is None:
            return None
        return {**spec, "path": spec.get("path") or self._p("runs", "released", f"{pretraining}.pth")}

    @property
    def released_finetuned(self) -> dict[str, dict[str, Any]]:
        """``released.finetuned``: dataset -> {folds: {k (int): checkpoint, path filled in}, where, model}.

        A URL without a ``path`` downloads to ``<paths.runs>/released/<dataset>/fold<k>.pth``.
        """
        out = {}
        for ds, spec in self.data.get("released", {}).get("finetuned", {}).items():
            folds = {int(k.removeprefix("fold")): {**f, "path": f.get("path") or self._p("runs", "released", ds,
                                                                                               f"{k}.pth")}
                     for k, f in spec["folds"].items()}
            out[ds] = {**spec, "folds": dict(sorted(folds.items()))}
        return out

    def finetune_settings(self, experiment: str, dataset: str) -> dict[str, Any]:
        """Resolve an experiment on a dataset (see :func:`maedfer.settings.resolve.finetune_settings`).

        finetune.defaults, the model of the experiment's pretraining, the experiment's overrides and the
        dataset's temporal stride; ``init`` is the pretraining's name (None: from scratch).
        """
        return _resolve.finetune_settings(self.params, experiment, dataset)

    def pretrain_config(self, pretraining: str, explicit: dict[str, Any] | None = None) -> PretrainConfig:
        """The typed settings of a named pretraining; ``explicit`` values (flags) win."""
        self.require_pretraining(pretraining)
        return _resolve.pretrain_config(self.params, pretraining, explicit)

    def finetune_config(self, experiment: str, dataset: str,
                        explicit: dict[str, Any] | None = None) -> FinetuneConfig:
        """The typed settings of an experiment on a dataset (``init`` only from ``explicit``); flags win."""
        self.require_experiment(experiment)
        self.require_dataset(dataset)
        return _resolve.finetune_config(self.params, experiment, dataset, explicit)

    def resources(self, stage: str) -> dict[str, Any]:
        """The ``resources`` of a training stage as written (``{"gpus": 0}`` without)."""
        return dict(self.data[stage].get("resources", {"gpus": 0}))


def _check_references(p: Profile) -> list[str]:
    errors: list[str] = []
    data = p.data
    datasets = p.datasets
    if data["pretrain"]["dataset"] not in datasets:
        errors.append(f"pretrain.dataset: {data['pretrain']['dataset']!r} is not in datasets")
    runs = data["pretrain"]["runs"]
    for name, run in runs.items():
        arch = run.get("arch", data["pretrain"]["defaults"]["arch"])
        if not is_pretrain_arch(arch):
            errors.append(f"pretrain.runs.{name}.arch: {arch!r} is not a pre-training model ({PRETRAIN_PREFIX}...)")
        if "checkpoint" in run and (extra := sorted(set(run) - RELEASED_ENTRY_KEYS)):
            errors.append(f"pretrain.runs.{name}: a released checkpoint takes only "
                          f"{', '.join(sorted(RELEASED_ENTRY_KEYS))}, not {', '.join(extra)} (it is not trained)")
    errors += _check_released_finetuned(p)
    experiments = data["finetune"]["experiments"]
    for name, exp in experiments.items():
        if exp["pretraining"] is not None and exp["pretraining"] not in runs:
            errors.append(f"finetune.experiments.{name}.pretraining: {exp['pretraining']!r} is not in pretrain.runs")
    for table, spec in p.tables.items():
        for ds, folds in spec["datasets"].items():
            if ds not in datasets:
                errors.append(f"tables.{table}.datasets.{ds}: not in datasets")
                continue
            if not p.folds(ds):
                errors.append(f"tables.{table}.datasets.{ds}: datasets.{ds} has no folds (an unlabelled dataset)")
            elif folds != "all" and (bad := sorted(set(folds) - set(p.folds(ds)))):
                errors.append(f"tables.{table}.datasets.{ds}: folds {bad} are not in datasets.{ds}.folds")
        for row, exp in spec["rows"].items():
            if exp not in experiments:
                errors.append(f"tables.{table}.rows.{row}: experiment {exp!r} is not in finetune.experiments")
    figs = p.figures
    if "fig4" in figs and figs["fig4"]["pretraining"] not in runs:
        errors.append(f"figures.fig4.pretraining: {figs['fig4']['pretraining']!r} is not in pretrain.runs")
    elif "fig4" in figs and "checkpoint" in runs[figs["fig4"]["pretraining"]]:
        errors.append(f"figures.fig4.pretraining: {figs['fig4']['pretraining']!r} is a released checkpoint; "
                      "Fig. 4 draws a pre-training run of this project")
    if "fig5" in figs:
        f5 = figs["fig5"]
        if f5["experiment"] not in experiments:
            errors.append(f"figures.fig5.experiment: {f5['experiment']!r} is not in finetune.experiments")
        if f5["dataset"] not in datasets or f5["fold"] not in p.folds(f5["dataset"]):
            errors.append(f"figures.fig5: fold {f5['fold']} of {f5['dataset']!r} is not in datasets")
    return errors


def _check_released_finetuned(p: Profile) -> list[str]:
    errors = []
    for ds, spec in p.data.get("released", {}).get("finetuned", {}).items():
        if ds not in p.datasets:
            errors.append(f"released.finetuned.{ds}: not in datasets")
            continue
        for k in spec["folds"]:
            if int(k.removeprefix("fold")) not in p.folds(ds):
                errors.append(f"released.finetuned.{ds}.folds.{k}: not one of datasets.{ds}.folds {p.folds(ds)}")
    return errors


def own_data_table(p: Profile, table: str) -> bool:
    """Whether every dataset of ``table`` is the user's own (``adapter: custom``): it has no paper counterpart."""
    return all(p.datasets.get(ds, {}).get("adapter") == "custom" for ds in p.tables[table]["datasets"])


def _check_paper_rows(p: Profile) -> list[str]:
    """Every table and row key must exist in the paper's reference data (maedfer/results/paper_tables.yaml)."""
    from maedfer.results.paper import load_paper_tables

    paper = load_paper_tables()
    errors = []
    for table, spec in p.tables.items():
        if own_data_table(p, table):
            continue  # a table over the user's own dataset(s): no paper rows to match
        if table not in paper:
            errors.append(f"tables.{table}: not one of the paper's tables ({', '.join(t for t in paper)})")
            continue
        for ds in spec["datasets"]:
            keys = paper[table].keys(ds) if ds in paper[table].datasets else []
            if not keys:
                errors.append(f"tables.{table}.datasets.{ds}: the paper's {table} has no {ds} section")
                continue
            for row in spec["rows"]:
                if row not in keys:
                    errors.append(f"tables.{table}.rows.{row}: no such row in the paper's {table} ({ds}); "
                                  f"rows: {', '.join(keys)}")
    return errors


def load_profile(path: str | Path) -> Profile:
    """Read, validate and cross-check a params file; :class:`ParamsError` names the first problems."""
    import jsonschema

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of settings at the top level")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        e = errors[0]
        msg = e.message if len(e.message) < 200 else e.message[:200] + "..."
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ParamsError(f"{path}: {_key_path(e.absolute_path)}: {msg}{more}")
    profile = Profile(path=path, data=data, params=Params.from_dict(data))
    problems = (_check_references(profile) or _check_paper_rows(profile) or recipe_value_problems(profile.params)
                or recipe_problems(profile.params))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ParamsError(f"{path}: {problems[0]}{more}")
    return profile


def settings_json(settings: dict[str, Any]) -> str:
    """Canonical JSON of resolved settings (Snakemake ``params``: a change re-runs the job)."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))
