"""The user's own dataset: CSV (path,label[,subject][,fold]) or one folder per class, videos or frame folders;
class names from the data; seeded, balanced, subject-independent folds written to folds.csv and reused."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from maedfer.data.adapters import LayoutError, get_adapter
from maedfer.data.adapters.custom import FOLDS_CSV, balanced_folds
from maedfer.data.records import FaceMode, SourceKind


def _frames(folder: Path, n: int = 2) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"{i:03d}.jpg").write_bytes(b"\xff\xd8jpeg")


def _csv_dataset(root: Path, rows: list[list[str]], header: str = "path,label,subject") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "labels.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(header.split(","))
        out.writerows(rows)
    return root


def test_csv_with_subjects_makes_seeded_balanced_subject_independent_folds_and_reuses_them(tmp_path):
    rows = []
    for s in range(10):
        for label in ("joy", "anger", "calm"):
            _frames(tmp_path / "d" / f"s{s}_{label}")
            rows.append([f"s{s}_{label}", label, f"subj{s}"])
    root = _csv_dataset(tmp_path / "d", rows)
    adapter = get_adapter("custom", root)
    records = list(adapter.records())
    assert adapter.class_names == ("anger", "calm", "joy") and adapter.num_folds == 5
    assert adapter.face_mode == FaceMode.PRECROPPED and {r.source_kind for r in records} == {SourceKind.FRAMES}
    by_subject = {}
    for r in records:
        by_subject.setdefault(r.subject, set()).add(r.test_folds)
        assert r.test_folds[0] not in r.train_folds and len(r.train_folds) == 4
    assert all(len(v) == 1 for v in by_subject.values())
    sizes = Counter(r.test_folds[0] for r in records)
    assert sorted(sizes.values()) == [6, 6, 6, 6, 6]  # 10 subjects of 3 clips over 5 folds
    written = (root / FOLDS_CSV).read_text()
    assert written.startswith("path,subject,fold")
    again = list(get_adapter("custom", root).records())
    assert [r.test_folds for r in again] == [r.test_folds for r in records]
    assert (root / FOLDS_CSV).read_text() == written
    assert balanced_folds([f"s{i}" for i in range(10)], [0] * 10, 5, seed=1) != balanced_folds(
        [f"s{i}" for i in range(10)], [0] * 10, 5, seed=2)  # the seed orders subjects of equal size


def test_balanced_folds_keep_classes_level_and_are_deterministic():
    subjects = [f"s{i // 4}" for i in range(40)]
    labels = [i % 4 for i in range(40)]
    a = balanced_folds(subjects, labels, 5, seed=0)
    assert a == balanced_folds(subjects, labels, 5, seed=0)
    per_fold = Counter(a[s] for s in subjects)
    assert set(per_fold.values()) == {8}


def test_fold_column_is_used_as_given_and_videos_use_mtcnn(tmp_path):
    root = tmp_path / "v"
    (root / "vids").mkdir(parents=True)
    rows = []
    for i, (label, fold) in enumerate([("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3)]):
        (root / "vids" / f"c{i}.mp4").write_bytes(b"mp4")
        rows.append([f"vids/c{i}.mp4", label, str(fold)])
    _csv_dataset(root, rows + [["vids/missing.mp4", "a", "1"]], header="path,label,fold")
    adapter = get_adapter("custom", root)
    records = list(adapter.records())
    assert adapter.num_folds == 3 and adapter.face_mode == FaceMode.MTCNN
    assert [(r.clip_id, r.test_folds, r.train_folds) for r in records][:2] == [("vids/c0", (1,), (2, 3)),
                                                                                ("vids/c1", (1,), (2, 3))]
    assert adapter.skipped == [("vids/missing.mp4", "not found")] and not (root / FOLDS_CSV).exists()


def test_class_folders_with_numeric_class_names(tmp_path):
    root = tmp_path / "f"
    for label in ("10", "2", "1"):
        for i in range(3):
            _frames(root / label / f"clip{i}")
    adapter = get_adapter("custom", root)
    records = list(adapter.records())
    assert adapter.class_names == ("1", "2", "10") and len(records) == 9
    assert {r.label_name: r.label for r in records} == {"1": 0, "2": 1, "10": 2}


def test_bad_layouts_are_one_line_errors(tmp_path):
    with pytest.raises(LayoutError, match="is not path,label"):
        list(get_adapter("custom", _csv_dataset(tmp_path / "a", [["x", "y"]], header="file,class")).records())
    only = tmp_path / "b"
    _frames(only / "happy" / "c1")
    with pytest.raises(LayoutError, match="need at least 2"):
        list(get_adapter("custom", only).records())
    few = tmp_path / "c"
    for label in ("x", "y"):
        _frames(few / label / "c1")
    with pytest.raises(LayoutError, match="fewer subjects than the 5 folds") as err:
        list(get_adapter("custom", few).records())
    assert "\n" not in str(err.value)
