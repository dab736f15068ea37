"""Resolved settings: one merge rule for params-file sections, one precedence rule for stage commands.

Merge (a named run or experiment over its section's ``defaults``): every key the run sets replaces
the default's, except ``arch_kwargs``, which merge key by key, also when the run sets ``arch``
(a ``null`` value removes an inherited constructor argument, e.g. ``region_size`` for a ViT).

Precedence (a stage command): an explicit flag > the params file > the dataclass default. Stage
parsers give their setting flags ``default=argparse.SUPPRESS``, so a flag is in the namespace only
when it was typed, even with its default value.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from typing import Any, TypeVar

from maedfer.settings.arch_names import classifier_arch, classifier_kwargs
from maedfer.settings.params import Params
from maedfer.settings.training import FinetuneConfig, PretrainConfig

T = TypeVar("T")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``over``; nested mappings are merged, everything else replaced."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def merge_settings(defaults: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """A section's ``defaults`` updated by a named run's overrides (``arch_kwargs`` merged; null removes)."""
    out = _merge(defaults, run)
    if "arch_kwargs" in out:
        out["arch_kwargs"] = {k: v for k, v in out["arch_kwargs"].items() if v is not None}
    return out


def pretrain_settings(params: Params, pretraining: str) -> dict[str, Any]:
    """``pretrain.defaults`` merged with the named run ``pretrain.runs.<pretraining>``."""
    return merge_settings(params.pretrain.defaults, params.pretrain.runs[pretraining])


def finetune_settings(params: Params, experiment: str, dataset: str) -> dict[str, Any]:
    """The settings of a fine-tuning experiment on a dataset.

    ``finetune.defaults``, the dataset's recipe overrides (``datasets.<dataset>.finetune``, e.g.
    FERV39k's total batch), the model of the experiment's pretraining (``pretrain_X`` -> ``X``, its
    constructor arguments less the pre-training-only ones), the experiment's overrides, and the
    dataset's temporal stride; ``init`` is the pretraining's name (None: from scratch).
    """
    exp = dict(params.finetune.experiments[experiment])
    pretraining = exp.pop("pretraining")
    settings = merge_settings(params.finetune.defaults, params.finetune.per_dataset.get(dataset, {}))
    if pretraining is not None:
        pre = pretrain_settings(params, pretraining)
        settings["arch"] = classifier_arch(pre["arch"])
        settings["arch_kwargs"] = classifier_kwargs(pre.get("arch_kwargs", {}))
    settings = merge_settings(settings, exp)
    settings["stride"] = params.datasets[dataset].stride
    settings["init"] = pretraining
    return settings


def recipe_problems(params: Params) -> list[str]:
    """Where a ``total_batch`` is not a multiple of ``batch_size`` x the stage's ``resources.gpus`` (one line each).

    The DAG starts one process per GPU; the engine refuses such a run at start-up, this finds it
    when the params file is loaded.
    """
    problems = []

    def check(settings: dict[str, Any], gpus: int, where: str) -> None:
        total, batch = settings.get("total_batch"), settings.get("batch_size", 1)
        if total is not None and total % (batch * max(gpus, 1)):
            problems.append(f"{where}: total_batch {total} is not a multiple of batch_size {batch} x "
                            f"{max(gpus, 1)} GPU(s) (resources.gpus); change total_batch, batch_size or gpus")

    for name in params.pretrain.runs:
        check(pretrain_settings(params, name), params.pretrain.resources.gpus, f"pretrain.runs.{name}")
    for exp in params.finetune.experiments:
        for ds, spec in params.datasets.items():
            if spec.folds:
                check(finetune_settings(params, exp, ds), params.finetune.resources.gpus,
                      f"finetune.experiments.{exp} on datasets.{ds}")
    return problems


def resolve_config(cls: type[T], from_file: dict[str, Any] | None = None, explicit: dict[str, Any] | None = None) -> T:
    """``cls`` (a settings dataclass) from its defaults, updated by the params file, then by explicit flags.

    Keys that are not fields of ``cls`` are ignored; lists become tuples where the default is a tuple.
    """
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in (from_file or {}).items() if k in names}
    values.update({k: v for k, v in (explicit or {}).items() if k in names})
    default = cls()
    for k, v in values.items():
        if isinstance(v, list) and isinstance(getattr(default, k), tuple):
            values[k] = tuple(v)
    return cls(**values)


def pretrain_config(params: Params, pretraining: str, explicit: dict[str, Any] | None = None) -> PretrainConfig:
    """The :class:`PretrainConfig` of a named pretraining, explicit values winning over the file."""
    return resolve_config(PretrainConfig, pretrain_settings(params, pretraining), explicit)


def finetune_config(params: Params, experiment: str, dataset: str,
                    explicit: dict[str, Any] | None = None) -> FinetuneConfig:
    """The :class:`FinetuneConfig` of an experiment on a dataset; ``init`` only from ``explicit`` (a path)."""
    settings = finetune_settings(params, experiment, dataset)
    settings.pop("init")
    return resolve_config(FinetuneConfig, settings, explicit)
