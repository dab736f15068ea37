"""Clip embeddings of a fine-tuned classifier and their t-SNE map, coloured by class (paper Fig. 5).

Embeddings are the classifier's pooled, normalised features before the head
(``model.forward_features``), averaged over the test views of a clip (the 2-clip test protocol).
The map is drawn at 800 x 600 px (``FIGSIZE`` x ``DPI``); the legend names each class and its count.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from maedfer.io_utils import atomic_path

log = logging.getLogger(__name__)

FIGSIZE: tuple[float, float] = (8.0, 6.0)
DPI = 100
DEFAULT_PERPLEXITY = 30.0


@torch.no_grad()
def extract_embeddings(
    model: torch.nn.Module, loader: torch.utils.data.DataLoader, device: torch.device | str = "cpu"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encoder features of every clip a loader yields.

    (features (N, C) float32, labels (N,) int64, clip positions (N,) int64) of a loader of single clips
    (B, C, T, H, W) or multi-view tests (B, V, C, T, H, W); a clip's views are averaged.
    """
    device = torch.device(device)
    model.eval()
    feats, labels, idx = [], [], []
    for video, label, clip_idx in tqdm(loader, desc="embeddings", leave=False):
        video = video.to(device, non_blocking=True)
        views = video.shape[1] if video.ndim == 6 else 1
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            f = model.forward_features(video.flatten(0, 1) if views > 1 else video)  # (B*V, C)
        feats.append(f.float().reshape(video.shape[0], views, -1).mean(1).cpu().numpy())  # (B, C)
        labels.append(label.numpy()), idx.append(clip_idx.numpy())
    if not feats:
        raise ValueError("no clips to embed")
    return np.concatenate(feats).astype(np.float32), np.concatenate(labels), np.concatenate(idx)


def effective_perplexity(perplexity: float, num_samples: int) -> float:
    """``perplexity`` clamped to (N - 1) / 3 (at least 1) so tiny test sets still embed; needs N >= 2."""
    if num_samples < 2:
        raise ValueError(f"t-SNE needs at least 2 clips, got {num_samples}")
    return float(min(perplexity, max(1.0, (num_samples - 1) / 3.0)))


def tsne_embed(features: np.ndarray, perplexity: float = DEFAULT_PERPLEXITY, seed: int = 0) -> np.ndarray:
    """(N, C) features -> (N, 2) float32 t-SNE coordinates (PCA init, automatic learning rate)."""
    from sklearn.manifold import TSNE

    p = effective_perplexity(perplexity, len(features))
    if p != perplexity:
        log.info("t-SNE perplexity lowered from %g to %g for %d clips", perplexity, p, len(features))
    tsne = TSNE(n_components=2, perplexity=p, init="pca", learning_rate="auto", random_state=seed)
    return tsne.fit_transform(np.asarray(features, dtype=np.float64)).astype(np.float32)


def plot_tsne(points: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path: str | Path,
              title: str | None = None) -> Path:
    """Scatter of (N, 2) points coloured by class, legend outside on the right; PNG written atomically."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points, labels = np.asarray(points), np.asarray(labels)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(labels):
        raise ValueError(f"points must be (N, 2) with one label each, got {points.shape} and {labels.shape}")
    c = len(class_names)
    if labels.size and (labels.min() < 0 or labels.max() >= c):
        raise ValueError(f"labels must lie in 0..{c - 1}, got {labels.min()}..{labels.max()}")
    cmap = colormaps["tab10" if c <= 10 else "tab20"]
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.06, 0.07, 0.66, 0.85))
    size = float(np.clip(2000.0 / max(len(points), 1), 6.0, 40.0))  # marker area: bigger for few clips
    for k, name in enumerate(class_names):
        sel = labels == k
        if sel.any():
            ax.scatter(points[sel, 0], points[sel, 1], s=size, color=cmap(k % cmap.N), alpha=0.8,
                       label=f"{name} ({int(sel.sum())})", linewidths=0)
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, markerscale=max(1.0, (40.0 / size) ** 0.5),
              frameon=False)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return path


def save_embeddings(path: str | Path, features: np.ndarray, points: np.ndarray, labels: np.ndarray,
                    clip_ids: Sequence[str], class_names: Sequence[str]) -> Path:
    """``.npz`` (atomically) with features (N, C), tsne (N, 2), labels (N,), clip_ids (N,), class_names (K,)."""
    path = Path(path)
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, features=np.asarray(features, np.float32), tsne=np.asarray(points, np.float32),
                 labels=np.asarray(labels, np.int64), clip_ids=np.asarray(list(clip_ids), dtype=np.str_),
                 class_names=np.asarray(list(class_names), dtype=np.str_))
    return path
