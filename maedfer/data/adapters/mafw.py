"""MAFW: in-the-wild clips, 11 compound-emotion classes, the five official single-label folds.

Layout: ``data/clips/<NNNNN>.mp4`` (raw clips), ``data/frames/<NNNNN>/`` (face-cropped frames),
``split/single/no_caption/set_<k>/{train,test}.txt``: space separated ``<NNNNN>.mp4 <emotion word>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from maedfer.data.adapters.base import SplitListAdapter, has_frames
from maedfer.data.records import FaceMode


class MAFWAdapter(SplitListAdapter):
    """MAFW: the owners' single-label fold lists over face-cropped frame folders (or raw clips)."""
    name: ClassVar[str] = "mafw"
    title: ClassVar[str] = "MAFW"
    class_names: ClassVar[tuple[str, ...]] = (
        "anger",
        "disgust",
        "fear",
        "happiness",
        "neutral",
        "sadness",
        "surprise",
        "contempt",
        "anxiety",
        "helplessness",
        "disappointment",
    )
    num_folds: ClassVar[int] = 5
    face_mode: FaceMode = FaceMode.PRECROPPED
    source_hint: ClassVar[str] = "its owners (request form at https://mafw-database.github.io/MAFW/)"
    expected_layout: ClassVar[str] = (
        "data/frames/<NNNNN>/ frame folders (or data/clips/<NNNNN>.mp4 with use_raw_videos) and "
        "split/single/no_caption/set_<k>/train.txt, test.txt, k=1..5"
    )
    default_options: ClassVar[dict[str, Any]] = {"use_raw_videos": False}

    def split_files(self) -> list[tuple[int, str, Path]]:
        """The train and test list of every fold."""
        base = self.root / "split" / "single" / "no_caption"
        return [(k, part, base / f"set_{k}" / f"{part}.txt") for k in self.fold_ids() for part in ("train", "test")]

    def media_dir(self) -> tuple[Path, str]:
        """The face-cropped frame folders, or the raw clips with ``use_raw_videos``."""
        if self.use_raw_videos:
            return self.root / "data" / "clips", "raw video"
        return self.root / "data" / "frames", "face-cropped frame"

    def parse_split(self, path: Path) -> Iterator[tuple[str, str, int | None]]:
        """Rows ``<NNNNN>.mp4 <emotion word>`` of a split list."""
        for line in path.read_text(encoding="utf-8-sig").splitlines():
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                yield parts[0], "", None
                continue
            name, raw_label = parts[0], " ".join(parts[1:])
            clip_id = name.rsplit(".", 1)[0] if "." in name else name
            yield clip_id, raw_label, self.label_of(raw_label)

    def clip_source(self, clip_id: str) -> Path | None:
        """The clip's frame folder (or raw video), None when missing."""
        folder = self.media_dir()[0]
        names = dict.fromkeys([clip_id, clip_id.zfill(5)] + ([clip_id.lstrip("0") or "0"] if clip_id.isdigit() else []))
        for name in names:
            if "/" in name or name in (".", ".."):
                continue
            if self.use_raw_videos:
                if (folder / f"{name}.mp4").is_file():
                    return folder / f"{name}.mp4"
            elif has_frames(folder / name):
                return folder / name
        return None
