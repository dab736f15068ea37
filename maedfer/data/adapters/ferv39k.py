"""FERV39k: in-the-wild clips from 22 scenes, 7 classes, one official train/test split (fold 1).

Layout: ``2_ClipsforFaceCrop/<Scene>/<Emotion>/<NNNN>/`` (face-cropped frames) and
``4_setups/All_scenes/{train,test}_All.csv``: space separated, no header,
``<Scene>/<Emotion>/<NNNN> <Emotion>``. The owners distribute face-cropped frames only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from maedfer.data.adapters.base import SplitListAdapter, has_frames
from maedfer.data.records import FaceMode


class FERV39kAdapter(SplitListAdapter):
    """FERV39k: one official train/test split over face-cropped frame folders (stride 1 by default)."""
    name: ClassVar[str] = "ferv39k"
    title: ClassVar[str] = "FERV39k"
    class_names: ClassVar[tuple[str, ...]] = ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear")
    num_folds: ClassVar[int] = 1
    face_mode: FaceMode = FaceMode.PRECROPPED
    default_stride: ClassVar[int] = 1
    use_raw_option: ClassVar[bool] = False
    source_hint: ClassVar[str] = "its owners (request form at https://wangyanckxx.github.io/Proj_CVPR2022_FERV39k.html)"
    expected_layout: ClassVar[str] = (
        "2_ClipsforFaceCrop/<Scene>/<Emotion>/<NNNN>/ frame folders and "
        "4_setups/All_scenes/train_All.csv, test_All.csv ('<Scene>/<Emotion>/<NNNN> <Emotion>' per line)"
    )
    default_options: ClassVar[dict[str, Any]] = {"use_raw_videos": False}

    def split_files(self) -> list[tuple[int, str, Path]]:
        """The train and test lists of the single split."""
        base = self.root / "4_setups" / "All_scenes"
        return [(1, "train", base / "train_All.csv"), (1, "test", base / "test_All.csv")]

    def media_dir(self) -> tuple[Path, str]:
        """The face-cropped frame folders (the owners ship no raw videos)."""
        return self.root / "2_ClipsforFaceCrop", "face-cropped frame"

    def parse_split(self, path: Path) -> Iterator[tuple[str, str, int | None]]:
        """Rows ``<Scene>/<Emotion>/<NNNN> <Emotion>`` of a split list."""
        for line in path.read_text(encoding="utf-8-sig").splitlines():
            parts = line.strip().rsplit(maxsplit=1)
            if not parts:
                continue
            if len(parts) == 1:
                yield parts[0], "", None
                continue
            clip_id, raw_label = parts[0].strip().strip("/"), parts[1]
            yield clip_id, raw_label, self.label_of(raw_label)

    def clip_source(self, clip_id: str) -> Path | None:
        """The clip's frame folder, None when missing."""
        if ".." in clip_id.split("/"):
            return None
        frames = self.media_dir()[0] / clip_id
        return frames if has_frames(frames) else None
