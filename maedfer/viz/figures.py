"""The paper's figures from checkpoints and run folders (called by python -m pipeline.figures).

* :func:`reconstruction_figures` (Fig. 4): a pre-training model's reconstructions of one clip at
  several mask ratios (one PNG per ratio, ``fig4-mask0.75.png`` ...; 1100 x 625 px for 16 frames)
  plus ``fig4.json`` (clip, ratios, masked losses). The model does not depend on its training mask
  ratio: the figure draws masks from ``TubeWindowMaskGenerator.for_encoder(encoder, ratio)``, the
  same seed for every ratio (so the tokens visible at 0.9 are also visible at 0.75).
* :func:`tsne_figure` (Fig. 5): t-SNE of a fine-tuned classifier's clip embeddings on a fold's test
  set (2-clip test views averaged), 800 x 600 px, plus an ``.npz`` beside the PNG.
* :func:`confusion_figure`: confusion matrix of one fold run or several pooled, plus a ``.json``.
* :func:`curves_figure`: training curves of fine-tuning or pre-training runs, 1200 x 450 px.

Every function raises :class:`FigureInputError` or another ValueError (the run-folder reader's
:class:`~maedfer.results.collect.ResultsInputError`), or FileNotFoundError, with a one-line message
naming the file and the fix; outputs are written atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maedfer.constants import DEFAULT_STRIDE
from maedfer.data.datasets import FinetuneDataset, PretrainDataset, Split, make_loader
from maedfer.data.transforms import eval_transform
from maedfer.io_utils import write_json_atomic
from maedfer.masking import TubeWindowMaskGenerator
from maedfer.models import MAEPretrainModel, VideoClassifier, load_model
from maedfer.viz import confusion, curves, reconstruction, tsne

log = logging.getLogger(__name__)

PAPER_RATIOS: tuple[float, ...] = (0.75, 0.9)


class FigureInputError(ValueError):
    """Input that cannot make the requested figure (wrong model kind, unknown clip, ...)."""


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/"auto": CUDA when available, else CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


_KIND_NAMES = {MAEPretrainModel: "pre-training model", VideoClassifier: "fine-tuned classifier"}
_WRITTEN_BY = {MAEPretrainModel: "python -m pipeline.pretrain", VideoClassifier: "python -m pipeline.finetune"}


def _load_kind(path: str | Path, kind: type[MAEPretrainModel] | type[VideoClassifier]) -> Any:
    """The model saved at ``path`` if it is a ``kind``; FigureInputError naming what it is otherwise."""
    model = load_model(path)
    if not isinstance(model, kind):
        other = VideoClassifier if kind is MAEPretrainModel else MAEPretrainModel
        raise FigureInputError(f"{path}: is a {_KIND_NAMES[other]} ({model.arch}); this figure needs a "
                               f"{_KIND_NAMES[kind]} (the model.pt written by {_WRITTEN_BY[kind]})")
    return model


def load_pretrain_model(path: str | Path) -> MAEPretrainModel:
    """The pre-training model saved at ``path``; FigureInputError if it is a fine-tuned classifier."""
    return _load_kind(path, MAEPretrainModel)


def load_classifier_model(path: str | Path) -> VideoClassifier:
    """The fine-tuned classifier saved at ``path``; FigureInputError if it is a pre-training model."""
    return _load_kind(path, VideoClassifier)


def pick_clip(clip_ids: np.ndarray, clip: int | str | None, seed: int, index_path: str | Path) -> int:
    """Position of the clip: ``str`` = clip id, ``int`` = position, ``None`` = drawn with ``seed``."""
    n = len(clip_ids)
    if clip is None:
        return int(np.random.default_rng(seed).integers(n))
    if isinstance(clip, str):
        hits = np.flatnonzero(clip_ids == clip)
        if hits.size == 0:
            raise FigureInputError(f"{index_path}: no clip {clip!r} in the selected clips (e.g. {clip_ids[0]!r}); "
                                   "pass a clip_id from the index or a position")
        return int(hits[0])
    if not 0 <= int(clip) < n:
        raise FigureInputError(f"{index_path}: clip position {clip} out of range; the selection has {n} clips")
    return int(clip)


def _ratio_name(ratio: float) -> str:
    return f"fig4-mask{ratio:.2f}.png"


def reconstruction_figures(
    checkpoint: str | Path,
    index: str | Path,
    out_dir: str | Path,
    ratios: Sequence[float] = PAPER_RATIOS,
    clip: int | str | None = None,
    seed: int = 0,
    fold: int | None = None,
    split: Split | None = None,
    stride: int = DEFAULT_STRIDE,
    motion: reconstruction.MotionStyle = "gray",
    device: str | torch.device | None = "cpu",
) -> dict[str, Any]:
    """Fig. 4 for one clip of ``index`` (all clips, or ``split`` of ``fold``), one PNG per mask ratio.

    The clip is read as in pre-training (``stride``-th frames from a seed-drawn start) but with the
    deterministic centre-crop transform. Writes ``out_dir/fig4-mask<r>.png`` and ``out_dir/fig4.json``;
    returns the JSON's content.
    """
    ratios = list(dict.fromkeys(float(r) for r in ratios))
    if not ratios:
        raise FigureInputError("no mask ratio given")
    bad = [r for r in ratios if not 0.0 < r < 1.0]
    if bad:
        raise FigureInputError(f"mask ratios must lie in (0, 1), got {bad}")
    model = load_pretrain_model(checkpoint)
    dev = resolve_device(device)
    model.to(dev).eval()
    pe = model.encoder.patch_embed
    dataset = PretrainDataset(index, stride=stride, clip_len=pe.num_frames, size=pe.img_size, seed=seed, fold=fold,
                              split=split, transform=eval_transform(pe.img_size))
    position = pick_clip(dataset.clip_ids, clip, seed, index)
    clip_id = str(dataset.clip_ids[position])
    video = dataset[(position, 0)].unsqueeze(0).to(dev)  # (1, 3, T, H, W)
    out_dir = Path(out_dir)
    figures = []
    for ratio in ratios:
        generator = TubeWindowMaskGenerator.for_encoder(model.encoder, ratio)
        mask = generator(1, generator=torch.Generator().manual_seed(seed), device=dev)  # (1, L)
        with torch.no_grad():
            losses = model.loss(video, model(video, mask), mask)
        title = (f"mask ratio {ratio:.2f} ({generator.num_visible}/{generator.num_patches} cubes visible); "
                 f"clip {clip_id}; pre-trained at {model.mask_generator.mask_ratio:.2f}")
        path = reconstruction.save_reconstruction_figure(model, video, mask, out_dir / _ratio_name(ratio),
                                                         title=title, motion=motion)
        figures.append({"mask_ratio": ratio, "png": str(path), "visible_cubes": generator.num_visible,
                        "size_px": list(reconstruction.figure_size_px(pe.grid[0])),
                        **{k: float(v) for k, v in losses.items()}})
        log.info("mask ratio %.2f: loss %.4f -> %s", ratio, float(losses["loss"]), path)
    summary = {"checkpoint": str(checkpoint), "arch": model.arch, "index": str(index), "fold": fold, "split": split,
               "clip_id": clip_id, "clip_position": position, "seed": seed, "stride": stride,
               "pretrain_mask_ratio": model.mask_generator.mask_ratio, "figures": figures}
    write_json_atomic(out_dir / "fig4.json", summary)
    return summary


def tsne_figure(
    checkpoint: str | Path,
    index: str | Path,
    fold: int | None,
    out_png: str | Path,
    perplexity: float = tsne.DEFAULT_PERPLEXITY,
    seed: int = 0,
    stride: int = DEFAULT_STRIDE,
    batch_size: int = 16,
    num_workers: int = 0,
    device: str | torch.device | None = "cpu",
) -> dict[str, Any]:
    """Fig. 5: t-SNE of the classifier's embeddings of the test clips of ``fold`` (every clip if None).

    Writes ``out_png`` and ``out_png`` with suffix ``.npz`` (:func:`maedfer.viz.tsne.save_embeddings`).
    """
    model = load_classifier_model(checkpoint)
    pe = model.encoder.patch_embed
    test_set = FinetuneDataset(index, fold, "test", "test", stride=stride, clip_len=pe.num_frames, size=pe.img_size)
    names = list(model.class_names or test_set.class_names)
    if len(names) != model.num_classes:
        raise FigureInputError(f"{checkpoint}: {model.num_classes} classes, but {index} has {len(names)} "
                               f"({names}); use a model fine-tuned on this dataset")
    if len(test_set) < 2:
        raise FigureInputError(f"{index}: fold {fold} has {len(test_set)} test clip(s); t-SNE needs at least 2")
    dev = resolve_device(device)
    model.to(dev)
    loader = make_loader(test_set, batch_size, shuffle=False, num_workers=num_workers)
    feats, labels, idx = tsne.extract_embeddings(model, loader, dev)  # (N, C), (N,), (N,)
    order = np.argsort(idx, kind="stable")
    feats, labels, idx = feats[order], labels[order], idx[order]
    points = tsne.tsne_embed(feats, perplexity, seed)  # (N, 2)
    dataset = test_set.metadata.get("dataset", Path(index).parent.name)
    where = f"fold {fold} test" if fold is not None else "all clips"
    out_png = Path(out_png)
    tsne.plot_tsne(points, labels, names, out_png, title=f"{model.arch} embeddings, {dataset} {where} "
                                                         f"({len(labels)} clips)")
    npz = tsne.save_embeddings(out_png.with_suffix(".npz"), feats, points, labels, test_set.clip_ids[idx], names)
    return {"checkpoint": str(checkpoint), "index": str(index), "fold": fold, "png": str(out_png), "npz": str(npz),
            "num_clips": int(len(labels)), "feature_dim": int(feats.shape[1]),
            "perplexity": tsne.effective_perplexity(perplexity, len(labels)), "seed": seed,
            "silhouette": _silhouette(feats, labels), "size_px": [round(tsne.DPI * s) for s in tsne.FIGSIZE]}


def _silhouette(features: np.ndarray, labels: np.ndarray) -> float | None:
    """Cosine silhouette of the embeddings by true class (higher = more separable); None if undefined."""
    from sklearn.metrics import silhouette_score

    k = len(np.unique(labels))
    if k < 2 or k >= len(labels):
        return None
    return float(silhouette_score(features, labels, metric="cosine"))


def confusion_figure(run_dirs: Sequence[str | Path], out_png: str | Path, suffix: str = "",
                     normalize: bool = True) -> dict[str, Any]:
    """Confusion matrix of one run or of several folds pooled, as ``out_png`` and a ``.json`` beside it.

    The JSON holds the pooled metrics and the mean/std over the folds. ``suffix="_best"`` reads
    metrics_best.json/predictions_best.csv. Bad run folders raise
    :class:`maedfer.results.collect.ResultsInputError` (a ValueError).
    """
    summary = confusion.pooled_confusion(run_dirs, suffix)
    out_png = Path(out_png)
    confusion.save_confusion_figure(summary, out_png, normalize=normalize)
    c = len(summary["pooled"]["class_names"])
    summary.update(png=str(out_png), size_px=list(confusion.figure_size_px(c)))
    write_json_atomic(out_png.with_suffix(".json"), summary)
    return summary


def curves_figure(run_dirs: Sequence[str | Path], out_png: str | Path, labels: Sequence[str] | None = None,
                  title: str | None = None) -> dict[str, Any]:
    """Training curves of several runs of one kind (fine-tuning or pre-training) overlaid in ``out_png``."""
    if not run_dirs:
        raise FigureInputError("no run folders given")
    names = list(labels) if labels else curves.run_labels(run_dirs)
    if len(names) != len(run_dirs):
        raise FigureInputError(f"{len(names)} labels for {len(run_dirs)} run folders")
    histories = []
    for name, d in zip(names, run_dirs, strict=True):
        kind, records = curves.read_history(d)
        histories.append((name, kind, records))
    kinds = {k for _, k, _ in histories}
    if len(kinds) > 1:
        by_kind = {k: [str(d) for d, (_, kk, _) in zip(run_dirs, histories, strict=True) if kk == k] for k in kinds}
        raise FigureInputError(f"cannot overlay fine-tuning and pre-training runs in one figure: {by_kind}")
    out_png = Path(out_png)
    curves.plot_curves(histories, out_png, title=title)
    return {"png": str(out_png), "kind": histories[0][1], "runs": [str(d) for d in run_dirs],
            "epochs": [len(r) for _, _, r in histories], "size_px": [round(curves.DPI * s) for s in curves.FIGSIZE]}

