"""A params file (params.yaml, params/demo.yaml) loaded, validated and resolved into stage settings.

:func:`load_profile` checks the file against :mod:`maedfer.workflow.schema` and then every cross
reference, raising :class:`ParamsError` with one line that names the file and the bad key. The
:class:`Profile` answers what each stage needs: the resolved settings of a pretraining or of a
fine-tuning experiment on a dataset, the folds of a table, and where every output lives.

Imports neither torch nor mlflow: the Snakefile loads it at start-up.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from maedfer.workflow.schema import SCHEMA

# Pre-training-only constructor arguments (maedfer.models.registry._PRETRAIN_KEYS): dropped when a
# fine-tuning model is built from its pretraining's settings. A test keeps the two lists equal.
PRETRAIN_ONLY_KEYS = ("mask_ratio", "appearance_weight", "token_order", "decoder_dim", "decoder_depth", "decoder_heads")
PER_CLASS_TABLES = {"table12": "table5", "table13": "table6", "table14": "table7"}  # made with 5-7


class ParamsError(ValueError):
    """A params file that does not validate; the message names the file and the key."""


def _key_path(path: Any) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``over``; nested dicts are merged, everything else replaced."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def classifier_arch(pretrain_arch: str) -> str:
    """The fine-tuning factory of a pre-training factory (``pretrain_X`` -> ``X``), as in the model registry."""
    if not pretrain_arch.startswith("pretrain_"):
        raise ValueError(f"{pretrain_arch!r} is not a pre-training model name (pretrain_...)")
    return pretrain_arch[len("pretrain_"):]


@dataclass(frozen=True)
class Profile:
    path: Path
    data: dict[str, Any]

    # -- names ------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.data["profile"]

    @property
    def datasets(self) -> dict[str, dict[str, Any]]:
        return self.data["datasets"]

    @property
    def tables(self) -> dict[str, dict[str, Any]]:
        return self.data["tables"]

    @property
    def figures(self) -> dict[str, dict[str, Any]]:
        return self.data.get("figures", {})

    @property
    def demo_data(self) -> dict[str, Any] | None:
        return self.data.get("demo_data")

    @property
    def mlflow(self) -> dict[str, Any]:
        return self.data["mlflow"]

    def folds(self, dataset: str) -> list[int]:
        return list(self.datasets[dataset].get("folds", []))

    def table_folds(self, table: str) -> dict[str, list[int]]:
        """dataset -> folds of a table (``all`` expanded)."""
        spec = self.tables[table]["datasets"]
        return {d: (self.folds(d) if f == "all" else list(f)) for d, f in spec.items()}

    # -- paths --------------------------------------------------------------------------------------
    def _p(self, key: str, *parts: str) -> str:
        return str(Path(self.data["paths"][key], *parts))

    def index_path(self, dataset: str) -> str:
        return self._p("shards", dataset, "index.parquet")

    def pretrain_dir(self, pretraining: str) -> str:
        return self._p("runs", "pretrain", pretraining)

    def finetune_dir(self, experiment: str, dataset: str, fold: int) -> str:
        return self._p("runs", "finetune", experiment, dataset, f"fold{fold}")

    def results_dir(self, *parts: str) -> str:
        return self._p("results", *parts)

    # -- resolved settings ------------------------------------------------------------------------
    def pretrain_settings(self, pretraining: str) -> dict[str, Any]:
        """pretrain.defaults updated by the named run (a run that sets ``arch`` replaces ``arch_kwargs``)."""
        defaults = self.data["pretrain"]["defaults"]
        run = self.data["pretrain"]["runs"][pretraining]
        if "arch" in run:
            defaults = {**defaults, "arch_kwargs": {}}
        return _merge(defaults, run)

    def finetune_settings(self, experiment: str, dataset: str) -> dict[str, Any]:
        """finetune.defaults, the model of the experiment's pretraining, the experiment's overrides and the
        dataset's temporal stride; ``init`` is the pretraining's name (None: from scratch)."""
        exp = dict(self.data["finetune"]["experiments"][experiment])
        pretraining = exp.pop("pretraining")
        settings = copy.deepcopy(self.data["finetune"]["defaults"])
        if pretraining is not None:
            pre = self.pretrain_settings(pretraining)
            settings["arch"] = classifier_arch(pre["arch"])
            settings["arch_kwargs"] = {k: v for k, v in pre.get("arch_kwargs", {}).items()
                                       if k not in PRETRAIN_ONLY_KEYS}
        if "arch" in exp and "arch_kwargs" not in exp:
            settings["arch_kwargs"] = {}
        settings = _merge(settings, exp)
        settings["stride"] = self.datasets[dataset].get("stride", 4)
        settings["init"] = pretraining
        return settings

    def resources(self, stage: str) -> dict[str, Any]:
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
        if not arch.startswith("pretrain_"):
            errors.append(f"pretrain.runs.{name}.arch: {arch!r} is not a pre-training model (pretrain_...)")
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
    if "fig5" in figs:
        f5 = figs["fig5"]
        if f5["experiment"] not in experiments:
            errors.append(f"figures.fig5.experiment: {f5['experiment']!r} is not in finetune.experiments")
        if f5["dataset"] not in datasets or f5["fold"] not in p.folds(f5["dataset"]):
            errors.append(f"figures.fig5: fold {f5['fold']} of {f5['dataset']!r} is not in datasets")
    return errors


def _check_paper_rows(p: Profile) -> list[str]:
    """Every table and row key must exist in the paper's reference data (maedfer/results/paper_tables.yaml)."""
    from maedfer.results.paper import load_paper_tables

    paper = load_paper_tables()
    errors = []
    for table, spec in p.tables.items():
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
    profile = Profile(path=path, data=data)
    problems = _check_references(profile) or _check_paper_rows(profile)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ParamsError(f"{path}: {problems[0]}{more}")
    return profile


def settings_json(settings: dict[str, Any]) -> str:
    """Canonical JSON of resolved settings (Snakemake ``params``: a change re-runs the job)."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))
