"""Training curves from run folders' ``history.json`` (one record per epoch), several runs overlaid.

Two kinds of history, told apart by their keys:

* fine-tuning (python -m pipeline.finetune): ``{"epoch", "train/loss", "val/uar", "val/war", "train/clips_per_s"}``
  (the validation keys only on the epochs that validated: ``eval_every``)
  -> panels: training loss | validation UAR (solid) and WAR (dashed), in %;
* pre-training (python -m pipeline.pretrain): ``{"epoch", "loss", "lr", "clips_per_s"}``
  -> panels: reconstruction loss | learning rate.

One colour per run (the legend, in the left panel, names the runs). Always 1200 x 450 px (``FIGSIZE`` x ``DPI``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from maedfer.io_utils import atomic_path

HistoryKind = Literal["finetune", "pretrain"]
FIGSIZE: tuple[float, float] = (12.0, 4.5)
DPI = 100
FINETUNE_KEYS = ("epoch", "train/loss")  # + "val/uar", "val/war" on the epochs that validated (eval_every)
VALIDATION_KEYS = ("val/uar", "val/war")
PRETRAIN_KEYS = ("epoch", "loss", "lr")


class HistoryError(ValueError):
    """A run folder without a usable history.json."""


def history_kind(records: Sequence[dict[str, Any]]) -> HistoryKind | None:
    """"finetune" or "pretrain" from the keys of the first record, None when neither."""
    first = records[0] if records else {}
    if all(k in first for k in FINETUNE_KEYS):
        return "finetune"
    if all(k in first for k in PRETRAIN_KEYS):
        return "pretrain"
    return None


def read_history(run_dir: str | Path) -> tuple[HistoryKind, list[dict[str, Any]]]:
    """(kind, records sorted by epoch) of ``run_dir/history.json``."""
    path = Path(run_dir) / "history.json"
    if not path.is_file():
        raise HistoryError(f"{path}: no history.json; point at a run folder written by python -m pipeline.finetune "
                           "or pipeline.pretrain (it is written after every epoch)")
    try:
        records = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise HistoryError(f"{path}: not valid JSON ({exc.msg}); re-run the training stage") from exc
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise HistoryError(f"{path}: expected a non-empty list of per-epoch records; let the run finish an epoch")
    kind = history_kind(records)
    needed = FINETUNE_KEYS if kind == "finetune" else PRETRAIN_KEYS
    if kind is None or any(k not in r for r in records for k in needed):
        raise HistoryError(f"{path}: records need the keys {list(FINETUNE_KEYS)} (fine-tuning) or "
                           f"{list(PRETRAIN_KEYS)} (pre-training); got {sorted(records[0])}")
    return kind, sorted(records, key=lambda r: r["epoch"])


def run_labels(run_dirs: Sequence[str | Path]) -> list[str]:
    """Short unique names: the folder names, or parent/name when folder names repeat."""
    paths = [Path(p) for p in run_dirs]
    names = [p.name or str(p) for p in paths]
    if len(set(names)) < len(names):
        names = [f"{p.parent.name}/{p.name}" for p in paths]
    return names


def plot_curves(histories: Sequence[tuple[str, HistoryKind, list[dict[str, Any]]]], path: str | Path,
                title: str | None = None) -> Path:
    """Plot (label, kind, records) runs of ONE kind into a two-panel PNG (atomically)."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not histories:
        raise ValueError("no runs to plot")
    kinds = {k for _, k, _ in histories}
    if len(kinds) > 1:
        raise ValueError("cannot overlay fine-tuning and pre-training histories in one figure; plot them apart")
    kind = kinds.pop()
    cmap = colormaps["tab10" if len(histories) <= 10 else "tab20"]
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    for i, (label, _, records) in enumerate(histories):
        color = cmap(i % cmap.N)
        epochs = [r["epoch"] for r in records]
        style = dict(color=color, marker="o", markersize=3, linewidth=1.4)
        if kind == "finetune":
            left.plot(epochs, [r["train/loss"] for r in records], label=label, **style)
            validated = [r for r in records if all(k in r for k in VALIDATION_KEYS)]
            val_epochs = [r["epoch"] for r in validated]
            right.plot(val_epochs, [100 * r["val/uar"] for r in validated], label=f"{label} UAR", **style)
            right.plot(val_epochs, [100 * r["val/war"] for r in validated], label=f"{label} WAR", linestyle="--",
                       **{**style, "marker": "s"})
        else:
            left.plot(epochs, [r["loss"] for r in records], label=label, **style)
            right.plot(epochs, [r["lr"] for r in records], label=label, **style)
    if kind == "finetune":
        left.set_ylabel("training loss")
        right.set_ylabel("validation UAR (solid) / WAR (dashed), %")
    else:
        left.set_ylabel("reconstruction loss")
        right.set_ylabel("learning rate")
        right.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    left.legend(fontsize=8, ncols=1 + len(histories) // 8)  # one colour per run, shared by both panels
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return path
