"""Dataset adapters against tiny copies of each owners' layout (empty placeholder files: adapters never decode)."""

from __future__ import annotations

from pathlib import Path

import pytest

from maedfer.constants import DEFAULT_STRIDE
from maedfer.data.adapters import ADAPTERS, DatasetAdapter, LayoutError, dataset_stride, get_adapter
from maedfer.data.records import ClipRecord, FaceMode, SourceKind


def touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def frames(folder: Path, n: int = 3, ext: str = ".jpg") -> None:
    for i in range(n):
        touch(folder / f"{folder.name}_{i + 1:05d}{ext}")


def by_id(records: list[ClipRecord]) -> dict[str, ClipRecord]:
    return {r.clip_id: r for r in records}


def fold_counts(records: list[ClipRecord], fold: int) -> tuple[int, int]:
    return sum(fold in r.train_folds for r in records), sum(fold in r.test_folds for r in records)


def check_common(adapter: DatasetAdapter, records: list[ClipRecord]) -> None:
    """Properties every adapter must have: stable order, unique ids, valid labels and folds, sources exist."""
    assert [r.clip_id for r in adapter.records()] == [r.clip_id for r in records]
    assert len({r.clip_id for r in records}) == len(records)
    for r in records:
        assert (adapter.root / r.source).exists(), r.source
        if adapter.num_folds:
            assert r.label_name == adapter.class_names[r.label]
            assert not set(r.train_folds) & set(r.test_folds)
            assert set(r.train_folds) | set(r.test_folds) <= set(adapter.fold_ids())


# ----------------------------------------------------------------------------------------- registry
def test_registry_names_and_class_attributes() -> None:
    assert list(ADAPTERS) == ["voxceleb2", "dfew", "ferv39k", "mafw", "cremad", "ravdess", "enterface", "custom"]
    expect = {
        "voxceleb2": (0, 0, FaceMode.FIXED_UPPER_CENTRE, 4),
        "dfew": (7, 5, FaceMode.PRECROPPED, 4),
        "ferv39k": (7, 1, FaceMode.PRECROPPED, 1),
        "mafw": (11, 5, FaceMode.PRECROPPED, 4),
        "cremad": (6, 5, FaceMode.MTCNN, 4),
        "ravdess": (8, 6, FaceMode.MTCNN, 4),
        "enterface": (6, 5, FaceMode.MTCNN, 4),
    }
    for name, (classes, folds, face_mode, stride) in expect.items():
        cls = ADAPTERS[name]
        assert (len(cls.class_names), cls.num_folds, cls.face_mode, cls.default_stride) == (
            classes,
            folds,
            face_mode,
            stride,
        ), name
        assert cls(".").fold_ids() == list(range(1, folds + 1))
    assert ADAPTERS["dfew"].class_names == ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
    assert ADAPTERS["mafw"].class_names[7:] == ("contempt", "anxiety", "helplessness", "disappointment")
    assert ADAPTERS["ravdess"].class_names[0] == "neutral" and ADAPTERS["ravdess"].class_names[7] == "surprised"


def test_dataset_stride_is_the_entry_value_else_the_adapter_default() -> None:
    assert dataset_stride({"adapter": "ferv39k"}) == 1
    assert dataset_stride({"adapter": "dfew"}) == DEFAULT_STRIDE == 4
    assert dataset_stride({"adapter": "ferv39k", "stride": 3}) == 3


def test_get_adapter_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset 'affwild'.*dfew.*ravdess"):
        get_adapter("affwild", tmp_path)
    with pytest.raises(ValueError, match="unknown adapter option.*use_raw"):
        get_adapter("cremad", tmp_path, use_raw=True)
    with pytest.raises(ValueError, match="no raw videos"):
        get_adapter("ferv39k", tmp_path, use_raw_videos=True)
    assert isinstance(get_adapter("DFEW", tmp_path), ADAPTERS["dfew"])


# ----------------------------------------------------------------------------------------- DFEW
def make_dfew(root: Path, n: int = 10, header: bool = True) -> None:
    """Clips 1..n; fold k tests clips with (id-1) % 5 == k-1; file label = id % 7 + 1."""
    for k in range(1, 6):
        for part in ("train", "test"):
            ids = [i for i in range(1, n + 1) if ((i - 1) % 5 == k - 1) == (part == "test")]
            lines = (["video_name,label"] if header else []) + [f"{i},{i % 7 + 1}" for i in ids]
            touch(root / "EmoLabel_DataSplit" / f"{part}(single-labeled)" / f"set_{k}.csv", "\n".join(lines) + "\n")
    for i in range(1, n + 1):
        frames(root / "Clip" / "clip_224x224" / f"{i:05d}", ext=".png" if i == 2 else ".jpg")
        touch(root / "Clip" / "original" / f"{i}.mp4")


def test_dfew_labels_folds_and_skips(tmp_path: Path) -> None:
    make_dfew(tmp_path)
    # clip 9 has no frame folder, clip 10 an empty one: both skipped
    for f in (tmp_path / "Clip" / "clip_224x224" / "00009").iterdir():
        f.unlink()
    (tmp_path / "Clip" / "clip_224x224" / "00009").rmdir()
    for f in (tmp_path / "Clip" / "clip_224x224" / "00010").iterdir():
        f.unlink()
    adapter = get_adapter("dfew", tmp_path)
    records = list(adapter.records())
    check_common(adapter, records)
    assert [r.clip_id for r in records] == [f"{i:05d}" for i in range(1, 9)]
    assert {s[0] for s in adapter.skipped} == {"00009", "00010"}
    r = by_id(records)
    assert (r["00006"].label, r["00006"].label_name) == (6, "fear")  # file label 7
    assert (r["00007"].label, r["00007"].label_name) == (0, "happy")  # file label 1
    assert r["00003"].source == "Clip/clip_224x224/00003" and r["00003"].source_kind == SourceKind.FRAMES
    assert r["00002"].test_folds == (2,) and r["00002"].train_folds == (1, 3, 4, 5)
    assert r["00006"].test_folds == (1,) and r["00001"].subject is None
    # fold membership: 8 usable clips, fold 1 tests ids 1 and 6
    assert [fold_counts(records, k) for k in range(1, 6)] == [(6, 2), (6, 2), (6, 2), (7, 1), (7, 1)]


def test_dfew_raw_videos_and_headerless_csv(tmp_path: Path) -> None:
    make_dfew(tmp_path, n=5, header=False)
    adapter = get_adapter("dfew", tmp_path, use_raw_videos=True)
    assert adapter.face_mode == FaceMode.MTCNN and ADAPTERS["dfew"].face_mode == FaceMode.PRECROPPED
    records = list(adapter.records())
    check_common(adapter, records)
    assert [(r.clip_id, r.source, r.source_kind) for r in records][:2] == [
        ("00001", "Clip/original/1.mp4", SourceKind.VIDEO),
        ("00002", "Clip/original/2.mp4", SourceKind.VIDEO),
    ]


def test_dfew_missing_split_file_and_wrong_root(tmp_path: Path) -> None:
    make_dfew(tmp_path, n=5)
    missing = tmp_path / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_3.csv"
    missing.unlink()
    with pytest.raises(LayoutError) as info:
        get_adapter("dfew", tmp_path).records()
    message = str(info.value)
    assert str(missing) in message and "dfew-dataset" in message and "\n" not in message
    with pytest.raises(LayoutError, match="dataset root folder not found"):
        get_adapter("dfew", tmp_path / "nope").validate()
    with pytest.raises(LayoutError, match="clip_224x224"):
        get_adapter("dfew", tmp_path / "Clip").validate()


def test_dfew_bad_rows_are_skipped(tmp_path: Path) -> None:
    make_dfew(tmp_path, n=5)
    split = tmp_path / "EmoLabel_DataSplit" / "train(single-labeled)" / "set_1.csv"
    split.write_text(split.read_text() + "3,9\n")  # label out of 1..7
    adapter = get_adapter("dfew", tmp_path)
    assert len(list(adapter.records())) == 5
    assert any("unknown label '9'" in reason for _, reason in adapter.skipped)


# ----------------------------------------------------------------------------------------- FERV39k
def make_ferv39k(root: Path) -> None:
    train = ["Action/Happy/0001 Happy", "Action/Sad/0002 Sad", "Crime/Fear/0001 Fear", "Crime/Fear/0009 Fear"]
    test = ["Action/Neutral/0003 Neutral", "Crime/Disgust/0004 Disgust"]
    touch(root / "4_setups" / "All_scenes" / "train_All.csv", "\n".join(train) + "\n")
    touch(root / "4_setups" / "All_scenes" / "test_All.csv", "\n".join(test) + "\n")
    for line in train[:3] + test:
        frames(root / "2_ClipsforFaceCrop" / line.split()[0])


def test_ferv39k(tmp_path: Path) -> None:
    make_ferv39k(tmp_path)
    adapter = get_adapter("ferv39k", tmp_path)
    records = list(adapter.records())
    check_common(adapter, records)
    r = by_id(records)
    assert sorted(r) == ["Action/Happy/0001", "Action/Neutral/0003", "Action/Sad/0002", "Crime/Disgust/0004",
                         "Crime/Fear/0001"]  # fmt: skip
    assert (r["Action/Happy/0001"].label, r["Action/Happy/0001"].train_folds) == (0, (1,))
    assert (r["Crime/Disgust/0004"].label, r["Crime/Disgust/0004"].label_name) == (5, "Disgust")
    assert r["Crime/Disgust/0004"].test_folds == (1,) and r["Crime/Disgust/0004"].train_folds == ()
    assert r["Crime/Fear/0001"].source == "2_ClipsforFaceCrop/Crime/Fear/0001"
    assert fold_counts(records, 1) == (3, 2)
    assert adapter.skipped == [
        ("Crime/Fear/0009", "listed in the split files but its face-cropped frame entry is missing")
    ]
    (tmp_path / "4_setups" / "All_scenes" / "test_All.csv").unlink()
    with pytest.raises(LayoutError, match="test_All.csv"):
        adapter.validate()


# ----------------------------------------------------------------------------------------- MAFW
def make_mafw(root: Path) -> None:
    words = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise", "contempt", "anxiety",
             "helplessness", "disappointment"]  # fmt: skip
    ids = [f"{i:05d}" for i in range(1, 12)]
    for k in range(1, 6):
        test = [c for j, c in enumerate(ids) if j % 5 == k - 1]
        for part, members in (("train", [c for c in ids if c not in test]), ("test", test)):
            lines = [f"{c}.mp4 {words[int(c) - 1]}" for c in members]
            touch(root / "split" / "single" / "no_caption" / f"set_{k}" / f"{part}.txt", "\n".join(lines) + "\n")
    for c in ids:
        frames(root / "data" / "frames" / c, ext=".png")
        touch(root / "data" / "clips" / f"{c}.mp4")


def test_mafw(tmp_path: Path) -> None:
    make_mafw(tmp_path)
    adapter = get_adapter("mafw", tmp_path)
    records = list(adapter.records())
    check_common(adapter, records)
    assert len(records) == 11 and adapter.skipped == []
    r = by_id(records)
    assert (r["00011"].label, r["00011"].label_name) == (10, "disappointment")
    assert (r["00008"].label, r["00008"].label_name) == (7, "contempt")
    assert r["00001"].test_folds == (1,) and r["00006"].test_folds == (1,) and r["00011"].test_folds == (1,)
    assert [fold_counts(records, k) for k in range(1, 6)] == [(8, 3), (9, 2), (9, 2), (9, 2), (9, 2)]
    raw = get_adapter("mafw", tmp_path, use_raw_videos=True)
    assert by_id(list(raw.records()))["00004"].source == "data/clips/00004.mp4"
    (tmp_path / "split" / "single" / "no_caption" / "set_5" / "train.txt").unlink()
    with pytest.raises(LayoutError, match=r"set_5/train.txt.*mafw-database"):
        adapter.validate()


# ----------------------------------------------------------------------------------------- CREMA-D
def test_cremad(tmp_path: Path) -> None:
    names = ["1001_DFA_ANG_XX", "1018_IEO_HAP_HI", "1019_DFA_SAD_LO", "1036_TIE_NEU_XX", "1054_MTI_DIS_MD",
             "1072_WSI_FEA_XX", "1091_TAI_HAP_XX", "1073_ITS_ANG_XX", "1002_DFA_XYZ_XX", "notes"]  # fmt: skip
    for n in names:
        touch(tmp_path / "VideoFlash" / f"{n}.flv")
    touch(tmp_path / "VideoFlash" / "readme.txt")
    adapter = get_adapter("cremad", tmp_path)
    records = list(adapter.records())
    check_common(adapter, records)
    r = by_id(records)
    assert len(records) == 8
    first = r["1001_DFA_ANG_XX"]
    assert (first.label, first.subject, first.test_folds, first.train_folds) == (0, "1001", (1,), (2, 3, 4, 5))
    assert r["1018_IEO_HAP_HI"].test_folds == (1,) and r["1019_DFA_SAD_LO"].test_folds == (2,)
    assert r["1036_TIE_NEU_XX"].label_name == "neutral" and r["1054_MTI_DIS_MD"].test_folds == (3,)
    assert r["1072_WSI_FEA_XX"].test_folds == (4,) and r["1073_ITS_ANG_XX"].test_folds == (5,)
    assert r["1091_TAI_HAP_XX"].test_folds == (5,) and r["1091_TAI_HAP_XX"].source == "VideoFlash/1091_TAI_HAP_XX.flv"
    assert [fold_counts(records, k) for k in range(1, 6)] == [(6, 2), (6, 2), (7, 1), (7, 1), (6, 2)]
    assert sorted(s[0] for s in adapter.skipped) == ["1002_DFA_XYZ_XX.flv", "notes.flv"]
    with pytest.raises(LayoutError, match="missing VideoFlash folder.*CREMA-D"):
        get_adapter("cremad", tmp_path / "VideoFlash").validate()


# ----------------------------------------------------------------------------------------- RAVDESS
def ravdess_name(modality: int, channel: int, emotion: int, actor: int, statement: int = 1, rep: int = 1) -> str:
    return f"{modality:02d}-{channel:02d}-{emotion:02d}-01-{statement:02d}-{rep:02d}-{actor:02d}.mp4"


def test_ravdess(tmp_path: Path) -> None:
    for actor in (1, 4, 5, 24):
        for emotion in range(1, 9):
            touch(tmp_path / f"Actor_{actor:02d}" / ravdess_name(2, 1, emotion, actor))
            touch(tmp_path / f"Actor_{actor:02d}" / ravdess_name(1, 1, emotion, actor))  # audio-video: not used
            touch(tmp_path / f"Actor_{actor:02d}" / ravdess_name(2, 2, emotion, actor))  # song: not used
    touch(tmp_path / "Actor_05" / ravdess_name(2, 1, 3, 7, statement=2))  # actor field != folder
    touch(tmp_path / "Actor_05" / "02-01-03.mp4")
    adapter = get_adapter("ravdess", tmp_path)
    records = list(adapter.records())
    check_common(adapter, records)
    assert len(records) == 32
    r = by_id(records)
    first = r["02-01-01-01-01-01-01"]
    assert (first.label, first.label_name, first.subject, first.test_folds) == (0, "neutral", "01", (1,))
    assert first.train_folds == (2, 3, 4, 5, 6) and first.source == "Actor_01/02-01-01-01-01-01-01.mp4"
    assert r["02-01-08-01-01-01-24"].label_name == "surprised" and r["02-01-08-01-01-01-24"].test_folds == (6,)
    assert r["02-01-05-01-01-01-05"].test_folds == (2,)
    assert [fold_counts(records, k) for k in range(1, 7)] == [(16, 16), (24, 8), (32, 0), (32, 0), (32, 0), (24, 8)]
    assert sorted(reason.split()[0] for _, reason in adapter.skipped) == ["actor", "file"]


def test_ravdess_one_folder_per_zip_and_errors(tmp_path: Path) -> None:
    touch(tmp_path / "Video_Speech_Actor_13" / "Actor_13" / ravdess_name(2, 1, 4, 13))
    records = list(get_adapter("ravdess", tmp_path).records())
    assert [(r.clip_id, r.test_folds, r.label_name) for r in records] == [("02-01-04-01-01-01-13", (4,), "sad")]
    with pytest.raises(LayoutError, match=r"no Actor_<NN> folders.*Zenodo record 1188976"):
        get_adapter("ravdess", tmp_path / "Video_Speech_Actor_13" / "Actor_13").validate()
    only_audio = tmp_path / "audio"
    touch(only_audio / "Actor_01" / ravdess_name(3, 1, 1, 1))
    with pytest.raises(LayoutError, match="no video-only speech clips"):
        get_adapter("ravdess", only_audio).validate()


# ----------------------------------------------------------------------------------------- eNTERFACE05
def test_enterface_lenient_names(tmp_path: Path) -> None:
    files = [
        "subject 1/anger/sentence 1/s1_an_1.avi",
        "subject 1/anger/sentence 2/s1_an_2.avi",
        "subject1/happiness/sentence 2/s1_ha_2.avi",  # missing space
        "Subject 2/Disgust/s2_di_3.avi",  # no sentence folder, capitalised
        "subject 11/subject 11/fear/sentence 3/s11_fe_3.avi",  # extra folder level
        "subject_20/sadness/sentence 4/s20_sa_4.AVI",
        "subject 38/surprise/sentence 5/s38_su_5.avi",
        "subject 44/sadness/sentence 5/s44_sa_5.avi",
        "subject 29/happiness/sentence 1/s29_ha_1.avi",
        # skipped:
        "subject 20/sadness/sentence 1/s20_an_1.avi",  # folder says sadness, file says anger
        "subject 3/anger/sentence 1/s4_an_1.avi",  # subject conflict
        "extras/clip.avi",  # nothing to go on
        "subject 45/anger/sentence 1/s45_an_1.avi",  # no such subject
        "subject 1/anger/sentence 1/copy/s1_an_1.avi",  # duplicate of the first
    ]
    for f in files:
        touch(tmp_path / "enterface database" / f)
    touch(tmp_path / "enterface database" / "subject 1" / "anger" / "sentence 1" / "._s1_an_1.avi")  # macOS junk
    adapter = get_adapter("enterface", tmp_path / "enterface database")
    records = list(adapter.records())
    check_common(adapter, records)
    r = by_id(records)
    assert sorted(r) == sorted(["s1_an_1", "s1_an_2", "s1_ha_2", "s2_di_3", "s11_fe_3", "s20_sa_4", "s38_su_5",
                                "s44_sa_5", "s29_ha_1"])  # fmt: skip
    assert (r["s1_ha_2"].label, r["s1_ha_2"].subject, r["s1_ha_2"].test_folds) == (3, "1", (1,))
    assert r["s1_ha_2"].source == "subject1/happiness/sentence 2/s1_ha_2.avi"
    assert (r["s2_di_3"].label_name, r["s2_di_3"].test_folds) == ("disgust", (1,))
    assert (r["s11_fe_3"].label_name, r["s11_fe_3"].subject, r["s11_fe_3"].test_folds) == ("fear", "11", (2,))
    assert (r["s20_sa_4"].label, r["s20_sa_4"].test_folds) == (4, (3,))
    assert r["s29_ha_1"].test_folds == (4,) and r["s38_su_5"].test_folds == (5,) and r["s44_sa_5"].test_folds == (5,)
    assert r["s38_su_5"].train_folds == (1, 2, 3, 4) and r["s38_su_5"].label_name == "surprise"
    assert [fold_counts(records, k) for k in range(1, 6)] == [(5, 4), (8, 1), (8, 1), (8, 1), (7, 2)]
    skipped = dict(adapter.skipped)
    assert set(skipped) == {
        "subject 20/sadness/sentence 1/s20_an_1.avi",
        "subject 3/anger/sentence 1/s4_an_1.avi",
        "extras/clip.avi",
        "subject 45/anger/sentence 1/s45_an_1.avi",
        "subject 1/anger/sentence 1/copy/s1_an_1.avi",
    }
    assert "conflicting emotions" in skipped["subject 20/sadness/sentence 1/s20_an_1.avi"]
    assert "outside 1-44" in skipped["subject 45/anger/sentence 1/s45_an_1.avi"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="no .avi videos.*enterface05"):
        get_adapter("enterface", tmp_path / "empty").validate()


# ----------------------------------------------------------------------------------------- VoxCeleb2
def test_voxceleb2(tmp_path: Path) -> None:
    for rel in ["id00012/21Uxsk56VDQ/00001.mp4", "id00012/21Uxsk56VDQ/00002.mp4", "id00012/Zz9/00001.mp4",
                "id00015/abc/00003.mp4", "id00015/abc/list.txt", "misc/x/00001.mp4"]:  # fmt: skip
        touch(tmp_path / "vox" / "dev" / "mp4" / rel)
    adapter = get_adapter("voxceleb2", tmp_path / "vox")
    assert adapter.fold_ids() == [] and adapter.face_mode == FaceMode.FIXED_UPPER_CENTRE
    records = list(adapter.records())
    check_common(adapter, records)
    assert [r.clip_id for r in records] == [
        "id00012/21Uxsk56VDQ/00001",
        "id00012/21Uxsk56VDQ/00002",
        "id00012/Zz9/00001",
        "id00015/abc/00003",
    ]
    first = records[0]
    assert (first.label, first.label_name, first.subject, first.train_folds, first.test_folds) == (
        -1,
        "",
        "id00012",
        (),
        (),
    )
    assert first.source == "dev/mp4/id00012/21Uxsk56VDQ/00001.mp4" and first.source_kind == SourceKind.VIDEO
    assert adapter.skipped == [("dev/mp4/misc", "not a speaker folder (idNNNNN)")]
    # the root may also be dev/mp4 itself
    inner = get_adapter("voxceleb2", tmp_path / "vox" / "dev" / "mp4")
    assert [r.source for r in inner.records()][0] == "id00012/21Uxsk56VDQ/00001.mp4"
    with pytest.raises(LayoutError, match=r"dev/mp4.*request form"):
        get_adapter("voxceleb2", tmp_path).validate()


def test_every_adapter_reports_a_wrong_root(tmp_path: Path) -> None:
    touch(tmp_path / "unrelated.txt")
    for name, cls in ADAPTERS.items():
        with pytest.raises(LayoutError) as info:
            list(get_adapter(name, tmp_path).records())
        message = str(info.value)
        assert message.startswith(cls.title) and str(tmp_path) in message and "obtain" in message, name
        assert "\n" not in message
