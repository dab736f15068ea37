"""VoxCeleb2 dev set: unlabelled talking-head videos for pre-training (no folds).

Layout: ``dev/mp4/<idNNNNN>/<YouTube id>/<NNNNN>.mp4``, 224 x 224, 25 fps. The face is the fixed
upper-centre patch of each frame, so no detection is needed. The root may be the folder holding
``dev/``, or ``dev/`` itself, or ``dev/mp4`` itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from maedfer.data.adapters.base import DatasetAdapter, sorted_entries
from maedfer.data.records import ClipRecord, FaceMode, SourceKind

_SPEAKER = re.compile(r"^id\d+$")


class VoxCeleb2Adapter(DatasetAdapter):
    """VoxCeleb2 dev set: unlabelled talking-head videos for pre-training (no folds)."""
    name: ClassVar[str] = "voxceleb2"
    title: ClassVar[str] = "VoxCeleb2"
    class_names: ClassVar[tuple[str, ...]] = ()
    num_folds: ClassVar[int] = 0
    face_mode: FaceMode = FaceMode.FIXED_UPPER_CENTRE
    source_hint: ClassVar[str] = (
        "its owners' request form (https://www.robots.ox.ac.uk/~vgg/data/voxceleb/vox2.html, dev set, video mp4)"
    )
    expected_layout: ClassVar[str] = "dev/mp4/<idNNNNN>/<YouTube id>/<NNNNN>.mp4"
    default_options: ClassVar[dict[str, Any]] = {}

    def mp4_dir(self) -> Path | None:
        """The ``dev/mp4`` folder (the one holding the idNNNNN speaker folders), None if absent."""
        for candidate in (self.root / "dev" / "mp4", self.root / "mp4", self.root):
            if candidate.is_dir() and any(_SPEAKER.match(e.name) and e.is_dir() for e in sorted_entries(candidate)):
                return candidate
        return None

    def validate(self) -> None:
        """Raise :class:`LayoutError` unless a ``dev/mp4`` folder with speaker folders is found."""
        if not self.root.is_dir():
            raise self.layout_error("dataset root folder not found", self.root)
        if self.mp4_dir() is None:
            raise self.layout_error("no idNNNNN speaker folders in dev/mp4", self.root / "dev" / "mp4")

    def _iter_records(self) -> Iterator[ClipRecord]:
        base = self.mp4_dir()
        assert base is not None  # validate() ran
        for speaker in sorted_entries(base):
            if not speaker.is_dir():
                continue
            if not _SPEAKER.match(speaker.name):
                self.skip(self.rel(Path(speaker.path)), "not a speaker folder (idNNNNN)")
                continue
            for video in sorted_entries(Path(speaker.path)):
                if not video.is_dir():
                    continue
                for clip in sorted_entries(Path(video.path)):
                    if not clip.name.lower().endswith(".mp4") or not clip.is_file():
                        continue
                    path = Path(clip.path)
                    yield ClipRecord(
                        clip_id=f"{speaker.name}/{video.name}/{clip.name[:-4]}",
                        source=self.rel(path),
                        source_kind=SourceKind.VIDEO,
                        subject=speaker.name,
                    )
