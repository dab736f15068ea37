"""eNTERFACE'05: lab recordings of 43 subjects, 6 classes, five subject-independent folds.

Layout: ``subject <N>/<emotion>/sentence <k>/s<N>_<xx>_<k>.avi`` with emotion folders anger,
disgust, fear, happiness, sadness, surprise (subject 6 does not exist). Some folders are named
inconsistently (``subject1``, ``Subject 1``, an extra folder level), so the subject, emotion and
sentence are read leniently from any folder level, with the file name as a fallback and a check;
files that cannot be placed are listed in ``skipped``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from maedfer.data.adapters.base import DatasetAdapter, is_hidden, range_folds
from maedfer.data.records import ClipRecord, FaceMode, SourceKind

_SUBJECT_DIR = re.compile(r"^subject\s*[_-]?\s*(\d+)$", re.IGNORECASE)
_SENTENCE_DIR = re.compile(r"^sentence\s*[_-]?\s*(\d+)$", re.IGNORECASE)
_FILE = re.compile(r"^s\s*_?(\d+)[_\s-]*([a-z]{2})[_\s-]*(\d+)?", re.IGNORECASE)
_CODES: tuple[str, ...] = ("an", "di", "fe", "ha", "sa", "su")  # file-name codes, in label order
_STEMS: tuple[str, ...] = ("ang", "dis", "fea", "hap", "sad", "sur")  # folder-name prefixes, in label order
VIDEO_EXTENSIONS: tuple[str, ...] = (".avi",)
# Test subjects of folds 1..5 (inclusive ranges).
TEST_SUBJECTS: tuple[tuple[int, int], ...] = ((1, 10), (11, 19), (20, 28), (29, 37), (38, 44))


def _folder_emotion(name: str) -> int | None:
    letters = re.sub(r"[^a-z]", "", name.lower())
    for index, stem in enumerate(_STEMS):
        if letters.startswith(stem) and not letters.startswith(("subject", "sentence")):
            return index
    return None


def _agree(what: str, values: set[int]) -> tuple[int | None, str | None]:
    """The single value of ``values`` (None if empty) or an error message if they disagree."""
    if len(values) > 1:
        return None, f"conflicting {what} {sorted(values)} in folder and file names"
    return (next(iter(values)) if values else None), None


class ENTERFACEAdapter(DatasetAdapter):
    """eNTERFACE'05: 43 subjects' posed videos, 6 classes, five subject-independent folds."""
    name: ClassVar[str] = "enterface"
    title: ClassVar[str] = "eNTERFACE'05"
    class_names: ClassVar[tuple[str, ...]] = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
    num_folds: ClassVar[int] = 5
    face_mode: FaceMode = FaceMode.MTCNN
    source_hint: ClassVar[str] = "its owners (http://www.enterface.net/enterface05/, the eNTERFACE'05 emotion database)"
    expected_layout: ClassVar[str] = "subject <N>/<emotion>/sentence <k>/s<N>_<xx>_<k>.avi, N=1..44 (no 6)"
    default_options: ClassVar[dict[str, Any]] = {}

    def _videos(self) -> Iterator[Path]:
        """Every video under the root, in sorted path order."""
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not is_hidden(d))
            for name in sorted(files):
                if not is_hidden(name) and name.lower().endswith(VIDEO_EXTENSIONS):
                    yield Path(folder) / name

    def validate(self) -> None:
        """Raise :class:`LayoutError` unless the root holds at least one ``.avi`` video."""
        if not self.root.is_dir():
            raise self.layout_error("dataset root folder not found", self.root)
        if next(self._videos(), None) is None:
            raise self.layout_error("no .avi videos under", self.root)

    def _place(self, rel: Path) -> tuple[tuple[int, int, int | None] | None, str]:
        """(subject, label, sentence) of a video from its folders and file name, or (None, reason)."""
        subjects, emotions, sentences = set(), set(), set()
        for part in rel.parts[:-1]:
            if m := _SUBJECT_DIR.match(part.strip()):
                subjects.add(int(m.group(1)))
            elif m := _SENTENCE_DIR.match(part.strip()):
                sentences.add(int(m.group(1)))
            elif (emotion := _folder_emotion(part)) is not None:
                emotions.add(emotion)
        if m := _FILE.match(Path(rel.name).stem):
            subjects.add(int(m.group(1)))
            code = m.group(2).lower()
            if code in _CODES:
                emotions.add(_CODES.index(code))
            if m.group(3) is not None and not sentences:
                sentences.add(int(m.group(3)))
        subject, problem = _agree("subject numbers", subjects)
        if problem:
            return None, problem
        label, problem = _agree("emotions", emotions)
        if problem:
            return None, problem
        if subject is None:
            return None, "cannot tell the subject from the folder or file names"
        if label is None:
            return None, "cannot tell the emotion from the folder or file names"
        sentence = min(sentences) if len(sentences) == 1 else None
        return (subject, label, sentence), ""

    def _iter_records(self) -> Iterator[ClipRecord]:
        seen: dict[str, str] = {}
        for path in self._videos():
            rel = path.relative_to(self.root)
            placed, reason = self._place(rel)
            if placed is None:
                self.skip(rel.as_posix(), reason)
                continue
            subject, label, sentence = placed
            train_folds, test_folds = range_folds(subject, TEST_SUBJECTS)
            if not test_folds:
                self.skip(rel.as_posix(), f"subject {subject} is outside 1-44")
                continue
            clip_id = f"s{subject}_{_CODES[label]}_{sentence if sentence is not None else path.stem}"
            if clip_id in seen:
                self.skip(rel.as_posix(), f"same subject, emotion and sentence as {seen[clip_id]}")
                continue
            seen[clip_id] = rel.as_posix()
            yield ClipRecord(
                clip_id=clip_id,
                source=rel.as_posix(),
                source_kind=SourceKind.VIDEO,
                label=label,
                label_name=self.class_names[label],
                subject=str(subject),
                train_folds=train_folds,
                test_folds=test_folds,
            )
