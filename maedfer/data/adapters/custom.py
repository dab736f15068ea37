"""A dataset of the user's own: a CSV of clips, or one folder per class; videos or frame folders.

Layouts (``root`` is the dataset folder, ``datasets.<name>.root`` with ``adapter: custom``):

* ``labels.csv`` with a header ``path,label[,subject][,fold]``: ``path`` relative to the root (a video file or
  a folder of frames), ``label`` a class name, ``subject`` who is filmed (folds never split a subject),
  ``fold`` the test fold (1..k) of the clip when the user has their own split.
* No ``labels.csv``: one folder per class (``<class>/<clip>.mp4`` or ``<class>/<clip>/<frames>.jpg``);
  every clip is its own subject.

Class names come from the data (sorted; numerically when they are all integers). Without a fold column,
``num_folds`` (default 5) subject-independent folds are made with a seeded, class-balanced assignment of
whole subjects and written to ``<root>/folds.csv`` (``path,subject,fold``) so that they can be cited; an
existing ``folds.csv`` for the same clips is reused as it is. Frame folders are taken as face crops
(resized only), videos go through MTCNN face detection.
"""

from __future__ import annotations

import csv
import logging
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from maedfer.data.adapters.base import DatasetAdapter, has_frames, sorted_entries
from maedfer.data.records import ClipRecord, FaceMode, SourceKind

log = logging.getLogger(__name__)

LABELS_CSV = "labels.csv"
FOLDS_CSV = "folds.csv"
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".flv", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v"})


def balanced_folds(subjects: list[str], labels: list[int], num_folds: int, seed: int) -> dict[str, int]:
    """Subject -> fold (1..num_folds): whole subjects, seeded, each fold's class counts kept level.

    Subjects are taken largest first (ties in a seeded random order) and each goes to the fold whose
    per-class counts stay most even (least sum of squares after adding it; then the smaller fold).
    """
    per_subject: dict[str, Counter] = {}
    for s, y in zip(subjects, labels, strict=True):
        per_subject.setdefault(s, Counter())[y] += 1
    order = sorted(per_subject)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda s: -sum(per_subject[s].values()))
    counts = [Counter() for _ in range(num_folds)]
    out = {}
    for s in order:
        add = per_subject[s]

        def cost(f: int, add: Counter = add) -> tuple[int, int, int]:
            return (sum((counts[f][c] + n) ** 2 for c, n in add.items()), sum(counts[f].values()), f)

        best = min(range(num_folds), key=cost)
        counts[best].update(add)
        out[s] = best + 1
    return out


class CustomAdapter(DatasetAdapter):
    """The user's own dataset (see the module docstring); class names and folds come from the data."""

    name: ClassVar[str] = "custom"
    title: ClassVar[str] = "custom dataset"
    num_folds: int = 5
    source_hint: ClassVar[str] = "your own recordings (README: 'Your own dataset')"
    expected_layout: ClassVar[str] = (f"{LABELS_CSV} with columns path,label[,subject][,fold], or one folder per "
                                      "class holding videos or folders of frames")
    default_options: ClassVar[dict[str, Any]] = {"num_folds": 5, "seed": 0, "use_raw_videos": False}

    def __init__(self, root: str, **options: Any) -> None:
        super().__init__(root, **options)
        self.num_folds = int(self.options["num_folds"])
        self.class_names: tuple[str, ...] = ()
        self._rows: list[tuple[str, str, str, int | None]] = []  # (path, label, subject, fold or None)

    # ----------------------------------------------------------------- layout
    def records(self) -> Iterator[ClipRecord]:
        """Validate (which reads the rows and lists the unusable ones in ``skipped``), then iterate."""
        self.validate()
        return self._iter_records()

    def validate(self) -> None:
        """Read the CSV or the class folders; raise :class:`LayoutError` when there is nothing usable."""
        if not self.root.is_dir():
            raise self.layout_error("dataset root folder not found", self.root)
        self.skipped = []
        rows = self._csv_rows() if (self.root / LABELS_CSV).is_file() else self._folder_rows()
        labels = sorted({r[1] for r in rows}, key=lambda t: (0, int(t), t) if t.isdigit() else (1, 0, t))
        if len(labels) < 2:
            raise self.layout_error(f"found {len(labels)} class(es) with usable clips, need at least 2, in", self.root)
        self.class_names = tuple(labels)
        given = [r[3] for r in rows if r[3] is not None]
        if given and len(given) != len(rows):
            raise self.layout_error("the fold column is empty for some rows (give it for all or none) in",
                                    self.root / LABELS_CSV)
        self.num_folds = max(given) if given else int(self.options["num_folds"])
        if not given and len({r[2] for r in rows}) < self.num_folds:
            raise self.layout_error(f"fewer subjects than the {self.num_folds} folds to make in", self.root)
        self._rows = rows
        kinds = {self._kind(r[0]) for r in rows}
        self.face_mode = FaceMode.PRECROPPED if kinds == {SourceKind.FRAMES} else FaceMode.MTCNN

    def _kind(self, rel: str) -> SourceKind:
        return SourceKind.FRAMES if (self.root / rel).is_dir() else SourceKind.VIDEO

    def _usable(self, rel: str) -> bool:
        path = self.root / rel
        if path.is_dir():
            if has_frames(path):
                return True
            self.skip(rel, "folder without .jpg/.jpeg/.png frames")
            return False
        if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
            return True
        self.skip(rel, "not found" if not path.exists() else f"not a video ({', '.join(sorted(VIDEO_EXTENSIONS))})")
        return False

    def _csv_rows(self) -> list[tuple[str, str, str, int | None]]:
        path = self.root / LABELS_CSV
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip().lower() for h in reader.fieldnames or []]
            if not {"path", "label"} <= set(header) or set(header) - {"path", "label", "subject", "fold"}:
                raise self.layout_error(f"header {','.join(header) or '(empty)'} is not path,label[,subject][,fold]",
                                        path)
            rows = []
            for n, raw in enumerate(reader, start=2):
                row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
                rel, label = row["path"].replace("\\", "/"), row["label"]
                if not rel or not label:
                    self.skip(f"{LABELS_CSV}:{n}", "empty path or label")
                    continue
                fold = row.get("fold") or None
                if fold is not None and not (fold.isdigit() and int(fold) >= 1):
                    raise self.layout_error(f"line {n}: fold {fold!r} is not a number >= 1", path)
                if self._usable(rel):
                    rows.append((rel, label, row.get("subject") or rel, int(fold) if fold else None))
        if not rows:
            raise self.layout_error("no usable rows in", path)
        return rows

    def _folder_rows(self) -> list[tuple[str, str, str, int | None]]:
        rows = []
        for cls in sorted_entries(self.root):
            if not cls.is_dir():
                continue
            for clip in sorted_entries(Path(cls.path)):
                rel = f"{cls.name}/{clip.name}"
                if self._usable(rel):
                    rows.append((rel, cls.name, rel, None))
        return rows

    # ----------------------------------------------------------------- folds
    def _folds(self) -> dict[str, int]:
        """Path -> test fold: the CSV's fold column, else folds.csv (reused when it matches), else made and written."""
        if self._rows and self._rows[0][3] is not None:
            return {r[0]: r[3] for r in self._rows}
        subject_of = {r[0]: r[2] for r in self._rows}
        written = self.root / FOLDS_CSV
        if written.is_file():
            with open(written, newline="", encoding="utf-8") as f:
                old = {r["path"]: (r["subject"], int(r["fold"])) for r in csv.DictReader(f)}
            if ({p: s for p, (s, _) in old.items()} == subject_of
                    and {k for _, k in old.values()} == set(range(1, self.num_folds + 1))):
                return {p: k for p, (_, k) in old.items()}
            log.warning("%s lists other clips or another number of folds; making the folds again", written)
        index = {name: i for i, name in enumerate(self.class_names)}
        by_subject = balanced_folds([r[2] for r in self._rows], [index[r[1]] for r in self._rows], self.num_folds,
                                    int(self.options["seed"]))
        folds = {r[0]: by_subject[r[2]] for r in self._rows}
        try:
            tmp = written.with_name(FOLDS_CSV + ".tmp")
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                out = csv.writer(f)
                out.writerow(["path", "subject", "fold"])
                out.writerows([r[0], r[2], folds[r[0]]] for r in self._rows)
            tmp.replace(written)
            log.info("wrote %d subject-independent folds (seed %s) to %s", self.num_folds, self.options["seed"],
                     written)
        except OSError as exc:
            log.warning("could not write %s (%s); the folds are made again the same way next time", written, exc)
        return folds

    def _iter_records(self) -> Iterator[ClipRecord]:
        folds = self._folds()
        all_folds = range(1, self.num_folds + 1)
        for rel, label, subject, _ in self._rows:
            k = folds[rel]
            index = self.class_names.index(label)
            yield ClipRecord(
                clip_id=rel.rsplit(".", 1)[0] if self._kind(rel) == SourceKind.VIDEO else rel,
                source=rel,
                source_kind=self._kind(rel),
                label=index,
                label_name=label,
                subject=subject,
                train_folds=tuple(f for f in all_folds if f != k),
                test_folds=(k,),
            )
