"""Early checks of every run in a params file: recipe values, folds and models, before any job starts.

:func:`recipe_value_problems` (torch-free; :func:`maedfer.workflow.profile.load_profile` runs it, so the
Snakefile and every stage see it) checks each resolved pretraining and experiment: ranges of the recipe
(``base_lr`` > 0, ``mask_ratio`` in [0, 1), ...) and folds each dataset's adapter has.
:func:`model_problems` builds every model on the meta device (no memory, no weights: a region size
that does not tile the token grid, an unknown constructor argument); ``maedfer workflow check`` and the
training stages run it. Each problem is one line naming the params key that sets the value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from maedfer.settings import resolve as _resolve
from maedfer.settings.params import Params
from maedfer.settings.training import PRECISIONS, classifier_build_kwargs


def _positive(v: Any) -> bool:
    return v > 0


def _non_negative(v: Any) -> bool:
    return v >= 0


def _fraction(v: Any) -> bool:  # [0, 1)
    return 0 <= v < 1


# key -> (test, what the value must be); None values are always allowed (they mean "the default behaviour")
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "base_lr": (_positive, "> 0"),
    "base_min_lr": (_non_negative, ">= 0"),
    "epochs": (_positive, ">= 1"),
    "warmup_epochs": (_non_negative, ">= 0"),
    "schedule_epochs": (_positive, ">= 1"),
    "batch_size": (_positive, ">= 1"),
    "accum_steps": (_positive, ">= 1"),
    "total_batch": (_positive, ">= 1"),
    "weight_decay": (_non_negative, ">= 0"),
    "layer_decay": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "drop_path": (_fraction, "in [0, 1)"),
    "head_init_scale": (_positive, "> 0"),
    "mixup": (_non_negative, ">= 0"),
    "cutmix": (_non_negative, ">= 0"),
    "label_smoothing": (_fraction, "in [0, 1)"),
    "reprob": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "stride": (_positive, ">= 1"),
    "num_workers": (_non_negative, ">= 0"),
    "cache_mb": (_non_negative, ">= 0"),
    "eval_every": (_positive, ">= 1"),
    "keep_last": (_positive, ">= 1"),
    "clip_grad": (_positive, "> 0 (or null: no clipping)"),
    "precision": (lambda v: v in PRECISIONS, f"one of {', '.join(PRECISIONS)} (or null)"),
    "compile": (lambda v: v in ("auto", True, False), "auto, true or false"),
    "data_path": (lambda v: v in ("auto", "cpu", "device"), "one of auto, cpu, device"),
    "crop_scale": (lambda v: len(v) == 2 and 0 < v[0] <= v[1] <= 1, "[low, high] with 0 < low <= high <= 1"),
}
ARCH_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "mask_ratio": (_fraction, "in [0, 1) (1.0 would leave no visible token)"),
    "drop_path_rate": (_fraction, "in [0, 1)"),
}


def value_problems(settings: dict[str, Any], key_of: Callable[[str], str]) -> list[str]:
    """Out-of-range values of one run's resolved ``settings``; ``key_of(key)`` names where a setting is set."""
    problems = []
    for table, values in ((RANGES, settings), (ARCH_RANGES, settings.get("arch_kwargs") or {})):
        for key, (ok, want) in table.items():
            value = values.get(key)
            if value is None:
                continue
            try:
                good = bool(ok(value))
            except TypeError:
                good = False
            if not good:
                where = key_of(key if values is settings else "arch_kwargs")
                name = where if values is settings else f"{where}.{key}"
                problems.append(f"{name}: {value!r} must be {want}")
    if settings.get("epochs") is not None and (settings.get("warmup_epochs") or 0) > settings["epochs"]:
        problems.append(f"{key_of('warmup_epochs')}: {settings['warmup_epochs']} warm-up epochs exceed the "
                        f"{settings['epochs']} epochs")
    return problems


def _pretrain_key(params: Params, name: str) -> Callable[[str], str]:
    run = params.pretrain.runs[name]
    return lambda key: f"pretrain.runs.{name}.{key}" if key in run else f"pretrain.defaults.{key}"


def _finetune_key(params: Params, exp: str, dataset: str) -> Callable[[str], str]:
    spec = params.finetune.experiments[exp]
    per_dataset = params.finetune.per_dataset.get(dataset, {})
    pre = spec.get("pretraining")

    def key_of(key: str) -> str:
        if key in spec:
            return f"finetune.experiments.{exp}.{key}"
        if key == "arch_kwargs" and pre is not None:
            return _pretrain_key(params, pre)(key)
        if key == "stride":
            return f"datasets.{dataset}.stride"
        return f"datasets.{dataset}.finetune.{key}" if key in per_dataset else f"finetune.defaults.{key}"

    return key_of


def runs(params: Params) -> Iterator[tuple[str, str, dict[str, Any], Callable[[str], str]]]:
    """Every run: (stage, label, resolved settings, params key of a setting); experiments once per labelled dataset."""
    for name in params.pretrain.runs:
        yield "pretrain", f"pretrain.runs.{name}", _resolve.pretrain_settings(params, name), _pretrain_key(params, name)
    for exp in params.finetune.experiments:
        for ds, spec in params.datasets.items():
            if spec.folds:
                yield ("finetune", f"finetune.experiments.{exp} on datasets.{ds}",
                       _resolve.finetune_settings(params, exp, ds), _finetune_key(params, exp, ds))


def recipe_value_problems(params: Params) -> list[str]:
    """Out-of-range recipe values of every run and folds that a dataset's adapter lacks (one line each)."""
    from maedfer.data.adapters import ADAPTERS

    problems = []
    for name, spec in params.datasets.items():
        adapter = ADAPTERS.get(str(spec.adapter).lower())
        have = getattr(adapter, "num_folds", 0) if adapter is not None else 0
        if have and (bad := sorted(f for f in spec.folds if not 1 <= f <= have)):
            problems.append(f"datasets.{name}.folds: {bad} are not folds of {spec.adapter} (it has folds 1..{have})")
    seen: set[str] = set()
    for stage, _, settings, key_of in runs(params):
        if stage == "pretrain" and "checkpoint" in settings:  # a released checkpoint: not trained here
            settings = {"arch_kwargs": settings.get("arch_kwargs") or {}}
        for problem in value_problems(settings, key_of):
            if problem not in seen:  # the same default fails for every run: say it once
                seen.add(problem)
                problems.append(problem)
    return problems


def check_model(arch: str, arch_kwargs: dict[str, Any], where: str, **build: Any) -> None:
    """Build ``arch(**arch_kwargs, **build)`` on the meta device; a ValueError naming ``where`` if it fails."""
    import torch

    from maedfer.models import create_model

    try:
        with torch.device("meta"):
            create_model(arch, **build, **arch_kwargs)
    except (TypeError, ValueError, KeyError, AssertionError, RuntimeError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{where}: model {arch} with arch_kwargs {arch_kwargs} cannot be built: {text}") from None


def model_problems(params: Params) -> list[str]:
    """Build every run's model on the meta device; one line per run whose model cannot be built."""
    problems, done = [], set()
    for stage, label, settings, key_of in runs(params):
        arch, kwargs = settings["arch"], dict(settings.get("arch_kwargs") or {})
        build = classifier_build_kwargs(settings) if stage == "finetune" else {}
        marker = repr((arch, sorted(kwargs.items()), sorted(build.items())))
        if marker in done:
            continue
        done.add(marker)
        try:
            check_model(arch, kwargs, f"{label} ({key_of('arch_kwargs')})", **build)
        except ValueError as exc:
            problems.append(str(exc))
    return problems
