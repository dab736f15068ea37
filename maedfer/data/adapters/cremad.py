"""CREMA-D: lab recordings of 91 actors, 6 classes, five subject-independent folds.

Layout: ``VideoFlash/<actor>_<sentence>_<EMO>_<level>.flv`` (e.g. ``1019_DFA_ANG_XX.flv``);
the label comes from the file name. No face crops are shipped: faces are detected (MTCNN).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar

from maedfer.data.adapters.base import DatasetAdapter, range_folds, sorted_entries
from maedfer.data.records import ClipRecord, FaceMode, SourceKind

_NAME = re.compile(r"^(\d{4})_([A-Za-z]{3})_([A-Za-z]{3})_([A-Za-z0-9]{1,2})$")
_EMOTION_CODES: tuple[str, ...] = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
VIDEO_EXTENSIONS: tuple[str, ...] = (".flv", ".mp4")
# Test actors of folds 1..5 (inclusive ranges).
TEST_ACTORS: tuple[tuple[int, int], ...] = ((1001, 1018), (1019, 1036), (1037, 1054), (1055, 1072), (1073, 1091))


class CremaDAdapter(DatasetAdapter):
    """CREMA-D: 91 actors' posed videos, 6 classes, five actor-independent folds."""
    name: ClassVar[str] = "cremad"
    title: ClassVar[str] = "CREMA-D"
    class_names: ClassVar[tuple[str, ...]] = ("anger", "disgust", "fear", "happy", "neutral", "sad")
    num_folds: ClassVar[int] = 5
    face_mode: FaceMode = FaceMode.MTCNN
    source_hint: ClassVar[str] = "its owners (https://github.com/CheyneyComputerScience/CREMA-D, folder VideoFlash)"
    expected_layout: ClassVar[str] = "VideoFlash/<actor>_<sentence>_<EMO>_<level>.flv (e.g. 1019_DFA_ANG_XX.flv)"
    default_options: ClassVar[dict[str, Any]] = {}

    def validate(self) -> None:
        """Raise :class:`LayoutError` unless ``VideoFlash/`` holds at least one video."""
        folder = self.root / "VideoFlash"
        self.require_dir(folder, "VideoFlash")
        if not any(e.name.lower().endswith(VIDEO_EXTENSIONS) for e in sorted_entries(folder)):
            raise self.layout_error("no .flv videos in", folder)

    def _iter_records(self) -> Iterator[ClipRecord]:
        for entry in sorted_entries(self.root / "VideoFlash"):
            stem, dot, ext = entry.name.rpartition(".")
            if not dot or f".{ext.lower()}" not in VIDEO_EXTENSIONS or not entry.is_file():
                continue
            match = _NAME.match(stem)
            if match is None:
                self.skip(entry.name, "file name is not <actor>_<sentence>_<EMO>_<level>")
                continue
            actor, emotion = match.group(1), match.group(3).upper()
            if emotion not in _EMOTION_CODES:
                self.skip(entry.name, f"unknown emotion code {emotion!r}")
                continue
            train_folds, test_folds = range_folds(int(actor), TEST_ACTORS)
            if not test_folds:
                self.skip(entry.name, f"actor {actor} is outside 1001-1091")
                continue
            label = _EMOTION_CODES.index(emotion)
            yield ClipRecord(
                clip_id=stem,
                source=f"VideoFlash/{entry.name}",
                source_kind=SourceKind.VIDEO,
                label=label,
                label_name=self.class_names[label],
                subject=actor,
                train_folds=train_folds,
                test_folds=test_folds,
            )
