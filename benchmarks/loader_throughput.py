"""Data-loader throughput: clips/s and frames decoded/s for 1, 2 and N DataLoader workers.

Modes: fine-tuning train (16 frames at stride 4, RandAugment + crop + flip + erase) and
pre-training (16 frames at stride 4, multi-scale crop). Also a single-process table of the
JPEG decoders (torchvision, OpenCV, PIL) on the index's own frames. Reports only, never asserts.

The device data path (``data_path: device``, :mod:`maedfer.data.gpu`): the CPU time a worker spends per
clip on the CPU path (read + decode + augment) vs the device path (read the bytes + draw the plan), and
the device path's clips/s (loader + batched decode and augmentation on ``--device``: CUDA when there is
one, else the same code on CPU tensors).

    python benchmarks/loader_throughput.py                                  # synthetic index in a temp dir
    python benchmarks/loader_throughput.py --index data/dfew/index.parquet --workers 1 2 16
    python benchmarks/loader_throughput.py --skip-loader --cpu-clips 64     # only the device-path tables
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from maedfer.data.datasets import FinetuneDataset, PretrainDataset, ShardClipDataset, make_loader
from maedfer.data.gpu.batch import BatchAugment
from maedfer.data.sampling import derive_rng, pretrain_indices, train_indices
from maedfer.data.shards import ShardWriter, build_index_table, read_clip_frames, write_index


def synthetic_frame(rng: np.random.Generator, size: int) -> np.ndarray:
    """A face-sized RGB frame with smooth structure and noise (JPEG size similar to real crops)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = rng.uniform(0.3, 0.7, 2) * size
    blob = 160 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (0.2 * size) ** 2))
    base = np.stack([blob + x * 0.3, blob * 0.8 + y * 0.4, blob * 0.6 + 40], -1)
    img = cv2.GaussianBlur(base + rng.normal(0, 10, base.shape), (3, 3), 0)
    return np.clip(img, 0, 255).astype(np.uint8)


def build_synthetic_index(out: Path, clips: int, size: int = 160, min_frames: int = 40, max_frames: int = 150) -> Path:
    """Write ``clips`` synthetic clips (lengths uniform in [min_frames, max_frames]) as shards + index."""
    rng = np.random.default_rng(0)
    pool = []  # a few encoded frames reused across clips: encoding is not what is measured
    for _ in range(48):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(synthetic_frame(rng, size), cv2.COLOR_RGB2BGR))
        pool.append(buf.tobytes())
    rows = []
    with ShardWriter(out, "synthetic", 64 * 2**20) as writer:
        for i in range(clips):
            n = int(rng.integers(min_frames, max_frames + 1))
            frames = [pool[int(j)] for j in rng.integers(len(pool), size=n)]
            c = writer.add(f"syn{i:05d}", frames, height=size, width=size, fps=25.0, key="syn")
            rows.append(
                dict(clip_id=c.clip_id, label=i % 7, label_name=f"c{i % 7}", subject=None, train_folds=[1],
                     test_folds=[], shard=c.shard, row=c.row, num_frames=n, height=size, width=size, fps=25.0,
                     checksum=c.checksum, source=f"synthetic/{i}")
            )  # fmt: skip
    index = out / "index.parquet"
    write_index(index, build_index_table(rows, {"dataset": "synthetic"}))
    return index


def decoded_frames(ds: ShardClipDataset, keys: list[tuple[int, int]], mode: str) -> int:
    """Distinct frames the dataset decodes for these (index, epoch) keys (the same draws it makes)."""
    total = 0
    for i, epoch in keys:
        rng = derive_rng(ds.seed, epoch, i)
        n = int(ds.num_frames[i])
        fn = train_indices if mode == "finetune" else pretrain_indices
        total += len(np.unique(fn(n, rng, ds.clip_len, ds.stride)))
    return total


def bench_loader(ds: ShardClipDataset, mode: str, workers: int, batch: int, batches: int) -> dict:
    loader = make_loader(ds, batch, shuffle=True, seed=0, num_workers=workers, drop_last=True, prefetch_factor=4)
    loader.sampler.set_epoch(0)
    keys = list(loader.sampler)
    it = iter(loader)
    next(it)  # worker start-up and first batch are not timed
    start = time.perf_counter()
    done = 0
    for _ in range(batches):
        try:
            next(it)
        except StopIteration:
            break
        done += 1
    sec = time.perf_counter() - start
    del it
    clips = done * batch
    frames = decoded_frames(ds, keys[batch : batch + clips], mode)
    return dict(mode=mode, workers=workers, clips=clips, sec=sec, clips_s=clips / sec, frames_s=frames / sec)


def worker_cpu_ms(ds: ShardClipDataset, clips: int) -> float:
    """CPU milliseconds per clip of ``ds[(i, 0)]`` in this process (what one loader worker spends)."""
    ds[(0, 0)]  # warm-up (imports, first shard open)
    start = time.process_time()
    for i in range(clips):
        ds[(i % len(ds), 0)]
    return 1000 * (time.process_time() - start) / clips


def bench_device_path(ds: ShardClipDataset, workers: int, batch: int, batches: int, device: torch.device) -> dict:
    """clips/s of the device path: loader (bytes + plans) then BatchAugment on ``device``, one batch at a time."""
    augment = BatchAugment(ds.transform, device, ds.load_size_for_device)
    loader = make_loader(ds, batch, shuffle=True, seed=0, num_workers=workers, drop_last=True,
                         prefetch_factor=4, pin_memory=device.type == "cuda")
    loader.sampler.set_epoch(0)
    it = iter(loader)
    augment(next(it))  # start-up, first batch (and CUDA kernels' first launch) untimed
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    done = aug_sec = 0.0
    for _ in range(batches):
        try:
            b = next(it)
        except StopIteration:
            break
        t0 = time.perf_counter()
        augment(b)
        sync()
        aug_sec += time.perf_counter() - t0
        done += 1
    sec = time.perf_counter() - start
    del it
    clips = int(done * batch)
    return dict(clips=clips, sec=sec, clips_s=clips / sec, aug_clips_s=clips / max(aug_sec, 1e-9))


def bench_decoders(index: Path, ds: ShardClipDataset, frames_wanted: int = 480) -> list[tuple[str, float]]:
    jpegs: list[bytes] = []
    for i in range(len(ds)):
        jpegs += read_clip_frames(ds.shard_paths[ds.shard_ids[i]], int(ds.rows[i]), list(range(16)))
        if len(jpegs) >= frames_wanted:
            break
    cv2.setNumThreads(1)
    decoders = {
        "torchvision.io.decode_jpeg": lambda: decode_jpeg(
            [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in jpegs], mode=ImageReadMode.RGB
        ),
        "cv2.imdecode + BGR2RGB": lambda: [
            cv2.cvtColor(cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for b in jpegs
        ],
        "PIL.Image.open + RGB": lambda: [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in jpegs],
    }
    out = []
    for name, fn in decoders.items():
        fn()
        start = time.perf_counter()
        reps = 3
        for _ in range(reps):
            fn()
        out.append((name, reps * len(jpegs) / (time.perf_counter() - start)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", type=Path, help="index.parquet of an ingested dataset (default: a synthetic one)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, os.cpu_count() or 2])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--batches", type=int, default=20, help="timed batches per row (after one untimed)")
    p.add_argument("--modes", nargs="+", choices=["finetune", "pretrain"], default=["finetune", "pretrain"])
    p.add_argument("--stride", type=int, default=4)
    p.add_argument("--synthetic-clips", type=int, default=256)
    p.add_argument("--cpu-clips", type=int, default=64, help="clips per row of the worker CPU-time table")
    p.add_argument("--device", default="auto", help="device of the device path (auto: cuda if available, else cpu)")
    p.add_argument("--device-workers", type=int, default=None,
                   help="loader workers of the device path (default: the largest of --workers)")
    p.add_argument("--skip-loader", action="store_true", help="skip the decoder and CPU DataLoader tables")
    args = p.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="maedfer-loader-bench-") as tmp:
        index = args.index
        if index is None:
            start = time.perf_counter()
            index = build_synthetic_index(Path(tmp), args.synthetic_clips)
            print(f"synthetic index: {args.synthetic_clips} clips of 40-150 frames, 160x160 JPEG "
                  f"({time.perf_counter() - start:.1f} s to write) in {index.parent}")  # fmt: skip
        elif not index.is_file():
            print(f"error: {index}: no such index; ingest a dataset first (pipeline/ingest.py)", file=sys.stderr)
            return 2
        datasets = {
            "finetune": FinetuneDataset(index, None, "train", "train", stride=args.stride),
            "pretrain": PretrainDataset(index, stride=args.stride),
        }
        print(f"host: {os.cpu_count()} CPUs, torch {torch.__version__}, batch {args.batch_size}")
        device_sets = {
            "finetune": FinetuneDataset(index, None, "train", "train", stride=args.stride, decode="device"),
            "pretrain": PretrainDataset(index, stride=args.stride, decode="device"),
        }
        print(f"\nWorker CPU time per clip, one process ({args.cpu_clips} clips, torch threads 1):")
        print("| mode | CPU path: read + decode + augment (ms) | device path: read bytes + draw plan (ms) |")
        print("|---|---:|---:|")
        for mode in args.modes:
            full, only = worker_cpu_ms(datasets[mode], args.cpu_clips), worker_cpu_ms(device_sets[mode], args.cpu_clips)
            print(f"| {mode} | {full:.2f} | {only:.2f} |", flush=True)
        workers = args.device_workers if args.device_workers is not None else max(args.workers)
        print(f"\nDevice path on {device} ({workers} loader workers; augment = batched decode + augmentation only):")
        print("| mode | device | clips | seconds | clips/s | augment clips/s |\n|---|---|---:|---:|---:|---:|")
        for mode in args.modes:
            r = bench_device_path(device_sets[mode], workers, args.batch_size, args.batches, device)
            print(f"| {mode} | {device} | {r['clips']} | {r['sec']:.2f} | {r['clips_s']:.1f} "
                  f"| {r['aug_clips_s']:.1f} |", flush=True)
        if args.skip_loader:
            return 0
        print("\nJPEG decode, one process:")
        print(f"| {'decoder':<28} | frames/s |\n|{'-' * 30}|---------:|")
        for name, fps in bench_decoders(index, datasets["finetune"]):
            print(f"| {name:<28} | {fps:8.0f} |")
        print("\nDataLoader (decode + sampling + augmentation):")
        print("| mode | workers | clips | seconds | clips/s | frames decoded/s |\n|---|---:|---:|---:|---:|---:|")
        for mode in args.modes:
            for workers in args.workers:
                r = bench_loader(datasets[mode], mode, workers, args.batch_size, args.batches)
                print(f"| {r['mode']} | {r['workers']} | {r['clips']} | {r['sec']:.2f} | {r['clips_s']:.1f} "
                      f"| {r['frames_s']:.0f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
