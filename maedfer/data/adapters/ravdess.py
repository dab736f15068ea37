"""RAVDESS: lab recordings of 24 actors, 8 classes, six subject-independent folds.

Layout: ``Actor_<NN>/<MM>-<VV>-<EE>-<II>-<SS>-<RR>-<AA>.mp4`` (the owners ship one zip per actor,
``Video_Speech_Actor_<NN>.zip``). Only video-only speech (``02-01-*``) is used. An extra folder
level above the ``Actor_<NN>`` folders (one folder per extracted zip) is accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from maedfer.data.adapters.base import DatasetAdapter, range_folds, sorted_entries
from maedfer.data.records import ClipRecord, FaceMode, SourceKind

_ACTOR_DIR = re.compile(r"^Actor_(\d{1,2})$", re.IGNORECASE)
_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
MODALITY_VIDEO_ONLY, CHANNEL_SPEECH = "02", "01"
# Test actors of folds 1..6 (inclusive ranges).
TEST_ACTORS: tuple[tuple[int, int], ...] = ((1, 4), (5, 8), (9, 12), (13, 16), (17, 20), (21, 24))


class RAVDESSAdapter(DatasetAdapter):
    """RAVDESS: 24 actors' video-only speech clips, 8 classes, six actor-independent folds."""
    name: ClassVar[str] = "ravdess"
    title: ClassVar[str] = "RAVDESS"
    class_names: ClassVar[tuple[str, ...]] = (
        "neutral",
        "calm",
        "happy",
        "sad",
        "angry",
        "fearful",
        "disgust",
        "surprised",
    )
    num_folds: ClassVar[int] = 6
    face_mode: FaceMode = FaceMode.MTCNN
    source_hint: ClassVar[str] = (
        "Zenodo record 1188976 (https://zenodo.org/records/1188976, files Video_Speech_Actor_NN.zip, CC BY-NC-SA 4.0)"
    )
    expected_layout: ClassVar[str] = "Actor_<NN>/02-01-<EE>-<II>-<SS>-<RR>-<NN>.mp4 (video-only speech), NN=01..24"
    default_options: ClassVar[dict[str, Any]] = {}

    def actor_dirs(self) -> list[tuple[int, Path]]:
        """(actor number, folder) of every ``Actor_<NN>`` folder at the root or one level down."""
        found: dict[int, Path] = {}
        candidates = [(e.name, Path(e.path)) for e in sorted_entries(self.root) if e.is_dir()]
        nested = [
            (f.name, Path(f.path))
            for _, path in candidates
            if not _ACTOR_DIR.match(path.name)
            for f in sorted_entries(path)
            if f.is_dir()
        ]
        for name, path in candidates + nested:
            match = _ACTOR_DIR.match(name)
            if match is None:
                continue
            actor = int(match.group(1))
            if actor in found:
                self.skip(self.rel(path), f"second folder for actor {actor} (using {self.rel(found[actor])})")
                continue
            found[actor] = path
        return sorted(found.items())

    def validate(self) -> None:
        """Raise :class:`LayoutError` unless some ``Actor_<NN>`` folder holds video-only speech clips."""
        if not self.root.is_dir():
            raise self.layout_error("dataset root folder not found", self.root)
        actors = self.actor_dirs()
        if not actors:
            raise self.layout_error("no Actor_<NN> folders in", self.root)
        prefix = f"{MODALITY_VIDEO_ONLY}-{CHANNEL_SPEECH}-"
        if not any(e.name.startswith(prefix) for _, path in actors for e in sorted_entries(path)):
            raise self.layout_error("no video-only speech clips (02-01-*.mp4) in the Actor_<NN> folders of", self.root)

    def _iter_records(self) -> Iterator[ClipRecord]:
        for actor, folder in self.actor_dirs():
            train_folds, test_folds = range_folds(actor, TEST_ACTORS)
            for entry in sorted_entries(folder):
                if not entry.name.lower().endswith(".mp4") or not entry.is_file():
                    continue
                stem = entry.name[:-4]
                match = _NAME.match(stem)
                if match is None:
                    self.skip(self.rel(Path(entry.path)), "file name is not seven two-digit fields")
                    continue
                modality, channel, emotion, *_, file_actor = match.groups()
                if (modality, channel) != (MODALITY_VIDEO_ONLY, CHANNEL_SPEECH):
                    continue  # audio-video / song clips: not used (by design, not an error)
                if int(file_actor) != actor:
                    self.skip(self.rel(Path(entry.path)), f"actor field {file_actor} != folder actor {actor}")
                    continue
                if not 1 <= int(emotion) <= len(self.class_names):
                    self.skip(self.rel(Path(entry.path)), f"unknown emotion code {emotion}")
                    continue
                if not test_folds:
                    self.skip(self.rel(Path(entry.path)), f"actor {actor} is outside 1-24")
                    continue
                label = int(emotion) - 1
                yield ClipRecord(
                    clip_id=stem,
                    source=self.rel(Path(entry.path)),
                    source_kind=SourceKind.VIDEO,
                    label=label,
                    label_name=self.class_names[label],
                    subject=f"{actor:02d}",
                    train_folds=train_folds,
                    test_folds=test_folds,
                )
