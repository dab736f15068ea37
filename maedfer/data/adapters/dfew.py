"""DFEW: in-the-wild movie clips, 7 classes, the five official folds.

Layout: ``Clip/clip_224x224/<id: 5 digits>/`` (face-cropped frames), ``Clip/original/<id>.mp4``
(raw clips), ``EmoLabel_DataSplit/{train,test}(single-labeled)/set_<k>.csv`` with columns
``video_name,label`` (label 1..7; video_name may lack the zero padding of the folder names).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from maedfer.data.adapters.base import SplitListAdapter, has_frames
from maedfer.data.records import FaceMode


class DFEWAdapter(SplitListAdapter):
    """DFEW: the owners' per-fold CSV lists over the face-cropped frame folders (or raw clips)."""
    name: ClassVar[str] = "dfew"
    title: ClassVar[str] = "DFEW"
    class_names: ClassVar[tuple[str, ...]] = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
    num_folds: ClassVar[int] = 5
    face_mode: FaceMode = FaceMode.PRECROPPED
    source_hint: ClassVar[str] = "its owners (request form at https://dfew-dataset.github.io/)"
    expected_layout: ClassVar[str] = (
        "Clip/clip_224x224/<NNNNN>/ frame folders (or Clip/original/<id>.mp4 with use_raw_videos), "
        "EmoLabel_DataSplit/train(single-labeled)/set_<k>.csv and test(single-labeled)/set_<k>.csv, k=1..5"
    )
    # frames_folder: "clip_224x224" (variable length, what the authors trained on) or "clip_224x224_16f"
    default_options: ClassVar[dict[str, Any]] = {"use_raw_videos": False, "frames_folder": "clip_224x224"}

    def split_files(self) -> list[tuple[int, str, Path]]:
        """The train and test CSV of every fold."""
        base = self.root / "EmoLabel_DataSplit"
        return [
            (k, part, base / f"{part}(single-labeled)" / f"set_{k}.csv")
            for k in self.fold_ids()
            for part in ("train", "test")
        ]

    def media_dir(self) -> tuple[Path, str]:
        """The face-cropped frame folders, or the raw clips with ``use_raw_videos``."""
        if self.use_raw_videos:
            return self.root / "Clip" / "original", "raw video"
        return self.root / "Clip" / self.options["frames_folder"], "face-cropped frame"

    def parse_split(self, path: Path) -> Iterator[tuple[str, str, int | None]]:
        """Rows of a ``video_name,label`` CSV (header optional, labels 1..7)."""
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if row and any(cell.strip() for cell in row)]
        name_col, label_col = 0, 1
        if rows and not rows[0][-1].strip().lstrip("-").isdigit():  # header row
            header = [cell.strip().lower() for cell in rows[0]]
            if "video_name" not in header or "label" not in header:
                raise self.layout_error(f"header {rows[0]} lacks the columns video_name,label", path)
            name_col, label_col = header.index("video_name"), header.index("label")
            rows = rows[1:]
        for row in rows:
            if len(row) <= max(name_col, label_col):
                yield ",".join(row), "", None
                continue
            raw_id, raw_label = row[name_col].strip(), row[label_col].strip()
            if raw_id.lower().endswith((".mp4", ".avi")):
                raw_id = raw_id[:-4]
            clip_id = raw_id.zfill(5) if raw_id.isdigit() else raw_id
            label = int(raw_label) - 1 if raw_label.isdigit() and 1 <= int(raw_label) <= 7 else None
            yield clip_id, raw_label, label

    def clip_source(self, clip_id: str) -> Path | None:
        """The clip's frame folder (or raw video, with or without zero padding), None when missing."""
        folder, _ = self.media_dir()
        if self.use_raw_videos:
            names = [clip_id, clip_id.lstrip("0") or "0"]
            for name in dict.fromkeys(names):
                for ext in (".mp4", ".avi"):
                    if (folder / f"{name}{ext}").is_file():
                        return folder / f"{name}{ext}"
            return None
        frames = folder / clip_id
        return frames if has_frames(frames) else None
