"""Is the demo data learnable? A tiny 3D CNN trained on one fold's train clips, tested on its held-out identities.

Reads the DFEW-style demo set through the DFEW adapter (the same path as real DFEW), samples
16 frames per clip (one per equal segment: random in training, the centre in testing), resizes
them to --size, and trains a four-layer 3D CNN from scratch on the CPU. Prints accuracy (WAR)
and UAR on the fold's test identities (never seen in training) against chance (1/7), and the
confusion matrix. Generates the demo set first when --data holds none.

    python benchmarks/demo_learnability.py                       # data/demo, fold 1, 112 px, CPU
    python benchmarks/demo_learnability.py --data data/demo --fold 2 --epochs 40 --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maedfer.constants import IMAGENET_MEAN, IMAGENET_STD
from maedfer.data.adapters.dfew import DFEWAdapter
from maedfer.data.video_io import read_frame_folder
from maedfer.demo import CLASS_NAMES
from maedfer.demo.generate import DemoSettings, generate_demo, read_manifest


class Tiny3DCNN(nn.Module):
    """Four Conv3d-BN-ReLU stages (16-32-64-128 channels), global average pool, linear head."""

    def __init__(self, num_classes: int = 7, in_channels: int = 3, width: int = 16, dropout: float = 0.3) -> None:
        super().__init__()

        def stage(cin: int, cout: int, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> nn.Sequential:
            pad = tuple(k // 2 for k in kernel)
            return nn.Sequential(
                nn.Conv3d(cin, cout, kernel, stride, pad, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)
            )

        w = width
        self.features = nn.Sequential(
            stage(in_channels, w, (3, 5, 5), (1, 2, 2)),  # (B, w, 16, 56, 56) at 112 px
            stage(w, 2 * w, (3, 3, 3), (2, 2, 2)),  # (B, 2w, 8, 28, 28)
            stage(2 * w, 4 * w, (3, 3, 3), (2, 2, 2)),  # (B, 4w, 4, 14, 14)
            stage(4 * w, 8 * w, (3, 3, 3), (2, 2, 2)),  # (B, 8w, 2, 7, 7)
        )
        # keep a coarse 4 x 4 layout: where a motion happens (brows, eyes, mouth) is the cue
        self.pool = nn.AdaptiveAvgPool3d((1, 4, 4))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(8 * w * 16, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 3, T, H, W)
        return self.head(self.pool(self.features(x)))  # (B, num_classes)


def segment_indices(n: int, count: int, rng: np.random.Generator | None) -> np.ndarray:
    """One index per equal segment of a clip of n frames: random (rng) or the segment centres."""
    edges = np.linspace(0, n, count + 1)
    if rng is None:
        pos = (edges[:-1] + edges[1:]) / 2
    else:
        pos = edges[:-1] + rng.random(count) * (edges[1:] - edges[:-1])
    return np.clip(np.floor(pos).astype(int), 0, n - 1)


def load_split(root: Path, fold: int, size: int) -> tuple[list[np.ndarray], list[int], list[np.ndarray], list[int]]:
    """Frames (T, size, size, 3) uint8 and labels of the fold's train and test clips."""
    adapter = DFEWAdapter(root)
    adapter.validate()
    train_x, train_y, test_x, test_y = [], [], [], []
    for record in adapter.records():
        frames = read_frame_folder(root / record.source)
        clip = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])
        if fold in record.train_folds:
            train_x.append(clip)
            train_y.append(record.label)
        elif fold in record.test_folds:
            test_x.append(clip)
            test_y.append(record.label)
    return train_x, train_y, test_x, test_y


INPUT_CHANNELS = {"motion": 3, "rgb": 3, "both": 6}


def to_batch(
    clips: list[np.ndarray], frames: int, rng: np.random.Generator | None, crop: int, mode: str = "motion"
) -> torch.Tensor:
    """Sample, augment (random crop + flip when rng is given), normalise: (B, C, T, crop, crop).

    ``mode``: "rgb" (normalised frames), "motion" (each frame minus the first sampled one, x4:
    what changes over the clip, which is the expression; the identity's still appearance
    cancels), or "both" (6 channels).
    """
    out = []
    for clip in clips:
        x = clip[segment_indices(len(clip), frames, rng)]  # (T, S, S, 3)
        s = x.shape[1]
        if rng is not None:
            y0, x0 = rng.integers(0, s - crop + 1, size=2)
            x = x[:, y0 : y0 + crop, x0 : x0 + crop]
            if rng.random() < 0.5:
                x = x[:, :, ::-1]
        else:
            o = (s - crop) // 2
            x = x[:, o : o + crop, o : o + crop]
        out.append(np.ascontiguousarray(x))
    t = torch.from_numpy(np.stack(out)).permute(0, 4, 1, 2, 3).float() / 255  # (B, 3, T, H, W)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)
    t = (t - mean) / std  # (B, 3, T, H, W)
    motion = 4 * (t - t[:, :, :1])
    return {"rgb": t, "motion": motion, "both": torch.cat([t, motion], 1)}[mode]


def evaluate(model: nn.Module, clips: list[np.ndarray], labels: list[int], frames: int, crop: int, mode: str) -> dict:
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(clips), 16):
            preds.append(model(to_batch(clips[i : i + 16], frames, None, crop, mode)).argmax(1))
    pred = torch.cat(preds).numpy()
    true = np.asarray(labels)
    confusion = np.zeros((len(CLASS_NAMES), len(CLASS_NAMES)), dtype=int)
    np.add.at(confusion, (true, pred), 1)
    recalls = [confusion[c, c] / confusion[c].sum() for c in range(len(CLASS_NAMES)) if confusion[c].sum()]
    return {"war": float((pred == true).mean()), "uar": float(np.mean(recalls)), "confusion": confusion.tolist()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/demo", help="demo data folder (generated there when absent)")
    ap.add_argument("--fold", type=int, default=1)
    ap.add_argument("--size", type=int, default=112, help="crop side fed to the model (112-160)")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument(
        "--input", choices=sorted(INPUT_CHANNELS), default="motion", help="what the model sees (see to_batch)"
    )
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    data = Path(args.data)
    if read_manifest(data) is None:
        generate_demo(data, DemoSettings())
    manifest = read_manifest(data)
    start = time.perf_counter()
    train_x, train_y, test_x, test_y = load_split(data / "dfew", args.fold, args.size + args.size // 8)
    test_ids = manifest["folds"][str(args.fold)]["test_identities"] if manifest else []
    print(
        f"fold {args.fold}: {len(train_x)} train clips, {len(test_x)} test clips "
        f"(held-out identities: {', '.join(test_ids)}); loaded in {time.perf_counter() - start:.1f} s"
    )

    model = Tiny3DCNN(len(CLASS_NAMES), INPUT_CHANNELS[args.input])
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    steps_per_epoch = math.ceil(len(train_x) / args.batch_size)
    total = args.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / steps_per_epoch) * 0.5 * (1 + math.cos(math.pi * s / total))
    )
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = rng.permutation(len(train_x))
        loss_sum, correct = 0.0, 0
        for i in range(0, len(order), args.batch_size):
            idx = order[i : i + args.batch_size]
            x = to_batch([train_x[j] for j in idx], args.frames, rng, args.size, args.input)  # (B, C, T, H, W)
            y = torch.tensor([train_y[j] for j in idx])
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        if epoch % 5 == 0 or epoch == args.epochs:
            res = evaluate(model, test_x, test_y, args.frames, args.size, args.input)
            print(
                f"epoch {epoch:3d}  train loss {loss_sum / len(train_x):.3f} acc {correct / len(train_x):.3f}  "
                f"test WAR {res['war']:.3f} UAR {res['uar']:.3f}  [{time.perf_counter() - start:.0f} s]"
            )
    train_time = time.perf_counter() - start
    res = evaluate(model, test_x, test_y, args.frames, args.size, args.input)
    chance = 1 / len(CLASS_NAMES)
    print(
        f"\n{args.input} input, held-out identities of fold {args.fold}: "
        f"WAR {100 * res['war']:.1f} %, UAR {100 * res['uar']:.1f} % (chance {100 * chance:.1f} %); "
        f"training {train_time:.0f} s on {args.threads} CPU threads"
    )
    print("confusion (rows true, columns predicted): " + " ".join(CLASS_NAMES))
    for name, row in zip(CLASS_NAMES, res["confusion"], strict=True):
        print(f"  {name:>8s} {row}")
    if args.json:
        result = {
            "fold": args.fold,
            "train_clips": len(train_x),
            "test_clips": len(test_x),
            "test_identities": test_ids,
            "epochs": args.epochs,
            "input": args.input,
            "size": args.size,
            "frames": args.frames,
            "chance": chance,
            "train_seconds": train_time,
            **res,
        }
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
