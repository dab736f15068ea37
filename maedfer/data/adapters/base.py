"""The adapter interface: read one dataset in its owners' layout and yield :class:`ClipRecord` objects.

Adapters never decode video; they only list files and read the owners' label / split files.
A layout that is wrong or incomplete raises :class:`LayoutError` with one line saying what was
expected, where, and where to obtain the data. Entries that cannot be used (a label row whose
clip is missing, an oddly named file) are skipped and listed in ``adapter.skipped``.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from maedfer.constants import DEFAULT_STRIDE
from maedfer.data.records import ClipRecord, FaceMode, SourceKind

log = logging.getLogger(__name__)

FRAME_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png"})
MAX_SKIP_WARNINGS = 50  # entries left out by one listing that get a warning line each


class LayoutError(ValueError):
    """The dataset folder does not have the layout its owners distribute."""


def is_hidden(name: str) -> bool:
    """Names to ignore while listing: dot files (e.g. macOS ``._x``) and ``__MACOSX`` folders."""
    return name.startswith(".") or name == "__MACOSX"


def sorted_entries(folder: Path) -> list[os.DirEntry]:
    """The visible entries of ``folder`` sorted by name (empty when the folder is missing)."""
    try:
        with os.scandir(folder) as it:
            entries = [e for e in it if not is_hidden(e.name)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(entries, key=lambda e: e.name)


def has_frames(folder: Path) -> bool:
    """True when ``folder`` holds at least one .jpg/.jpeg/.png file."""
    try:
        with os.scandir(folder) as it:
            return any(
                not is_hidden(e.name) and os.path.splitext(e.name)[1].lower() in FRAME_EXTENSIONS and e.is_file()
                for e in it
            )
    except (FileNotFoundError, NotADirectoryError):
        return False


def range_folds(number: int, test_ranges: Sequence[tuple[int, int]]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(train_folds, test_folds) of a subject whose number falls in one of the inclusive ``test_ranges``.

    Fold k (1-based) tests the subjects in ``test_ranges[k - 1]`` and trains on all the others.
    Returns two empty tuples for a subject outside every range.
    """
    test = tuple(k for k, (lo, hi) in enumerate(test_ranges, start=1) if lo <= number <= hi)
    if not test:
        return (), ()
    train = tuple(k for k in range(1, len(test_ranges) + 1) if k not in test)
    return train, test


class DatasetAdapter(ABC):
    """Base class of the per-dataset adapters (see ``maedfer.data.adapters.ADAPTERS``).

    Subclasses set the class attributes and implement :meth:`validate` and :meth:`_iter_records`.
    ``face_mode`` is a class default that an instance may change (``use_raw_videos=True``).
    """

    name: ClassVar[str]  # registry key, e.g. "dfew"
    title: ClassVar[str]  # display name, e.g. "DFEW"
    class_names: ClassVar[tuple[str, ...]] = ()  # index = label
    num_folds: ClassVar[int]
    face_mode: FaceMode = FaceMode.MTCNN
    default_stride: ClassVar[int] = DEFAULT_STRIDE  # temporal stride of a params entry that sets none
    source_hint: ClassVar[str]  # where the owners distribute the data
    expected_layout: ClassVar[str]  # one-line description of the owners' layout
    default_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, root: str | os.PathLike, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.default_options))
        if unknown:
            known = ", ".join(sorted(self.default_options)) or "none"
            raise ValueError(f"{self.title}: unknown adapter option(s) {', '.join(unknown)}; known: {known}")
        self.root = Path(root).expanduser()
        self.options: dict[str, Any] = {**self.default_options, **options}
        self.skipped: list[tuple[str, str]] = []

    # ----------------------------------------------------------------- public API
    @abstractmethod
    def validate(self) -> None:
        """Raise :class:`LayoutError` when the layout is wrong or incomplete."""

    def records(self) -> Iterator[ClipRecord]:
        """Validate the layout (eagerly), then iterate over the clips in a deterministic order.

        ``self.skipped`` is reset and filled while iterating.
        """
        self.validate()
        self.skipped = []
        return self._iter_records()

    def fold_ids(self) -> list[int]:
        """Fold numbers 1..num_folds."""
        return list(range(1, self.num_folds + 1))

    # ----------------------------------------------------------------- helpers
    @abstractmethod
    def _iter_records(self) -> Iterator[ClipRecord]: ...

    def layout_error(self, problem: str, path: Path | str) -> LayoutError:
        """One-line error: the problem, the path, the expected layout and where to get the data."""
        return LayoutError(
            f"{self.title}: {problem}: {path} (expected under the dataset root {self.root}: {self.expected_layout}; "
            f"obtain {self.title} from {self.source_hint} and pass the folder that holds it)"
        )

    def require_dir(self, path: Path, what: str) -> None:
        """Raise :class:`LayoutError` unless the root and the folder ``path`` (described as ``what``) exist."""
        if not self.root.is_dir():
            raise self.layout_error("dataset root folder not found", self.root)
        if not path.is_dir():
            raise self.layout_error(f"missing {what} folder", path)

    def require_file(self, path: Path, what: str) -> None:
        """Raise :class:`LayoutError` unless the root and the file ``path`` (described as ``what``) exist."""
        if not self.root.is_dir():
            raise self.layout_error("dataset root folder not found", self.root)
        if not path.is_file():
            raise self.layout_error(f"missing {what}", path)

    def rel(self, path: Path) -> str:
        """``path`` relative to the dataset root, with forward slashes."""
        return path.relative_to(self.root).as_posix()

    def skip(self, what: str, reason: str) -> None:
        """Record an unusable entry in ``self.skipped`` and log a warning naming it.

        The first :data:`MAX_SKIP_WARNINGS` entries of a listing get a warning line each; the rest are
        logged at debug level (all of them are in ``self.skipped`` and the ingest report).
        """
        self.skipped.append((what, reason))
        if len(self.skipped) <= MAX_SKIP_WARNINGS:
            log.warning("%s: left out %s: %s", self.title, what, reason)
            if len(self.skipped) == MAX_SKIP_WARNINGS:
                log.warning("%s: further entries left out are listed only in the ingest report", self.title)
        else:
            log.debug("%s: left out %s: %s", self.title, what, reason)

    def label_of(self, word: str) -> int | None:
        """Class index of a class name (case-insensitive), None when unknown."""
        lowered = word.strip().lower()
        for index, name in enumerate(self.class_names):
            if name.lower() == lowered:
                return index
        return None


class SplitListAdapter(DatasetAdapter):
    """Shared logic of datasets whose owners ship per-fold train/test lists (DFEW, FERV39k, MAFW).

    Subclasses implement :meth:`split_files` and :meth:`parse_split` (clip id -> label rows) and
    :meth:`clip_source`; this class merges the lists into one record per clip with its folds.
    """

    use_raw_option: ClassVar[bool] = True  # whether the layout has raw videos (use_raw_videos=True)

    def __init__(self, root: str | os.PathLike, **options: Any) -> None:
        super().__init__(root, **options)
        if self.options.get("use_raw_videos"):
            if not self.use_raw_option:
                raise ValueError(f"{self.title}: the owners' layout has no raw videos; use_raw_videos is not available")
            self.face_mode = FaceMode.MTCNN

    @property
    def use_raw_videos(self) -> bool:
        """Whether the adapter reads the raw videos (cropped with MTCNN) instead of the owners' face crops."""
        return bool(self.options.get("use_raw_videos"))

    @abstractmethod
    def split_files(self) -> list[tuple[int, str, Path]]:
        """(fold, "train" | "test", path) for every split file of the layout."""

    @abstractmethod
    def parse_split(self, path: Path) -> Iterable[tuple[str, str, int | None]]:
        """(clip id, raw label text, class index or None when the label is invalid) per row."""

    @abstractmethod
    def clip_source(self, clip_id: str) -> Path | None:
        """The frame folder (or raw video) of a clip, None when it is missing."""

    @abstractmethod
    def media_dir(self) -> tuple[Path, str]:
        """The folder holding the clips (frames or raw videos) and its description."""

    def validate(self) -> None:
        """Raise :class:`LayoutError` unless the media folder and every split file exist."""
        folder, what = self.media_dir()
        self.require_dir(folder, what)
        for _, _, path in self.split_files():
            self.require_file(path, "split file")

    def _iter_records(self) -> Iterator[ClipRecord]:
        labels: dict[str, int] = {}
        train: dict[str, set[int]] = {}
        test: dict[str, set[int]] = {}
        conflicts: set[str] = set()
        for fold, part, path in self.split_files():
            rows = 0
            for clip_id, raw_label, label in self.parse_split(path):
                if label is None:
                    self.skip(f"{self.rel(path)}: {clip_id}", f"unknown label {raw_label!r}")
                    continue
                rows += 1
                if labels.setdefault(clip_id, label) != label:
                    conflicts.add(clip_id)
                (train if part == "train" else test).setdefault(clip_id, set()).add(fold)
            if rows == 0:
                raise self.layout_error("no usable rows in split file", path)
        for clip_id in sorted(labels):
            if clip_id in conflicts:
                self.skip(clip_id, "different labels in different split files")
                continue
            train_folds, test_folds = train.get(clip_id, set()), test.get(clip_id, set())
            if train_folds & test_folds:
                self.skip(clip_id, f"in both the train and test lists of fold(s) {sorted(train_folds & test_folds)}")
                continue
            source = self.clip_source(clip_id)
            if source is None:
                self.skip(clip_id, f"listed in the split files but its {self.media_dir()[1]} entry is missing")
                continue
            label = labels[clip_id]
            yield ClipRecord(
                clip_id=clip_id,
                source=self.rel(source),
                source_kind=self.source_kind,
                label=label,
                label_name=self.class_names[label],
                subject=None,
                train_folds=tuple(sorted(train_folds)),
                test_folds=tuple(sorted(test_folds)),
            )

    @property
    def source_kind(self) -> SourceKind:
        """Raw videos or frame folders, following ``use_raw_videos``."""
        return SourceKind.VIDEO if self.use_raw_videos else SourceKind.FRAMES
