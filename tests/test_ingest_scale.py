"""Ingest at scale: progress lines off a terminal, MTCNN on every k-th frame, MTCNN in worker processes."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from maedfer.data import faces
from maedfer.data.faces import MtcnnSettings, detect_boxes, sparse_indices
from maedfer.data.ingest import ingest, ingest_settings
from maedfer.data.ingest_progress import format_duration
from maedfer.data.records import ClipRecord, FaceMode, SourceKind
from maedfer.data.shards import read_index
from tests.test_faces import face_clip
from tests.test_ingest import make_dataset
from tests.test_video_io import write_video


def test_progress_lines_in_the_log_when_not_on_a_terminal(tmp_path, caplog):
    root = tmp_path / "root"
    records = make_dataset(root, n_videos=3)
    with caplog.at_level(logging.INFO, logger="maedfer.data.ingest_progress"):
        ingest(records, root, tmp_path / "out", FaceMode.FIXED_UPPER_CENTRE, dataset="toy", progress=False,
               progress_seconds=1e-6)
    lines = [r.getMessage() for r in caplog.records if r.name == "maedfer.data.ingest_progress"]
    assert len(lines) >= len(records)  # one per clip at this interval, plus the final one
    assert lines[0].startswith(f"ingest toy: 1/{len(records)} clips (")
    assert "clips/s" in lines[0] and "frames/s" in lines[0] and "left" in lines[0]
    assert lines[-1].startswith(f"ingest toy: {len(records)}/{len(records)} clips (100%)")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="maedfer.data.ingest_progress"):  # the default: every 30 s
        ingest(records, root, tmp_path / "out2", FaceMode.FIXED_UPPER_CENTRE, dataset="toy", progress=False)
    assert not [r for r in caplog.records if r.name == "maedfer.data.ingest_progress"]


def test_format_duration():
    assert (format_duration(12.4), format_duration(256), format_duration(3 * 3600 + 125)) == ("12s", "4m16s", "3h02m")


class FakeDetector:
    """MTCNN.detect stand-in: one face whose box is the frame's constant value (a 2D position), prob 0.99."""

    def __init__(self) -> None:
        self.seen = 0

    def detect(self, batch):
        self.seen += len(batch)
        boxes = [np.array([[f[0, 0, 0], 10.0, f[0, 0, 0] + 40.0, 50.0]]) for f in batch]
        return np.array(boxes, dtype=object), np.array([np.array([0.99])] * len(batch), dtype=object)


def clip_with_x(xs) -> list[np.ndarray]:
    frames = []
    for x in xs:
        f = np.zeros((64, 96, 3), np.uint8)
        f[0, 0, 0] = x
        frames.append(f)
    return frames


def test_detect_every_k_detects_sparse_frames_and_redetects_where_the_face_moved(monkeypatch):
    detector = FakeDetector()
    monkeypatch.setattr(faces, "get_detector", lambda device=None: detector)
    assert sparse_indices(10, 4) == [0, 4, 8, 9] and sparse_indices(9, 4) == [0, 4, 8]

    steady = clip_with_x([20] * 10)
    boxes = detect_boxes(steady, MtcnnSettings(detect_every=4), "cpu")
    assert detector.seen == 4  # frames 0, 4, 8, 9
    assert np.isnan(boxes[[1, 2, 3, 5, 6, 7]]).all() and np.allclose(boxes[[0, 4, 8, 9]], [20, 10, 60, 50])

    detector.seen = 0
    moving = clip_with_x([20, 20, 20, 20, 20, 60, 60, 60, 60, 60])  # the face jumps between frames 4 and 8
    boxes = detect_boxes(moving, MtcnnSettings(detect_every=4), "cpu")
    assert detector.seen == 4 + 3  # frames 5, 6, 7 are detected too
    assert np.isnan(boxes[[1, 2, 3]]).all() and np.allclose(boxes[5:8, 0], 60)

    detector.seen = 0
    every = detect_boxes(moving, MtcnnSettings(), "cpu")
    assert detector.seen == 10 and not np.isnan(every).any()


def test_detect_every_one_keeps_the_fingerprint():
    default = ingest_settings(FaceMode.MTCNN, 160, 90, MtcnnSettings())
    assert "detect_every" not in default["mtcnn"]  # shards written before the setting existed are still reused
    assert ingest_settings(FaceMode.MTCNN, 160, 90, MtcnnSettings(detect_every=3))["mtcnn"]["detect_every"] == 3


@pytest.mark.slow
def test_mtcnn_in_two_worker_processes_matches_one_process(tmp_path):
    root = tmp_path / "root"
    records = []
    for i in range(3):
        frames, _ = face_clip(5, shift=2 + i)
        write_video(root / f"c{i}.avi", frames, fps=30)
        records.append(ClipRecord(f"c{i}", f"c{i}.avi", SourceKind.VIDEO, label=i % 2))
    rng = np.random.default_rng(1)
    write_video(root / "noise.avi", [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(4)], fps=30)
    records.insert(2, ClipRecord("noise", "noise.avi", SourceKind.VIDEO))
    kw = {"face_mode": FaceMode.MTCNN, "device": "cpu", "progress": False, "size": 64}
    serial = ingest(records, root, tmp_path / "serial", **kw)
    parallel = ingest(records, root, tmp_path / "parallel", workers=2, **kw)
    assert parallel.skipped == serial.skipped == {"no_face": ["noise"]} and parallel.written == 3
    a, b = read_index(tmp_path / "serial" / "index.parquet"), read_index(tmp_path / "parallel" / "index.parquet")
    assert a.column("clip_id").to_pylist() == ["c0", "c1", "c2"]  # record order, none lost or doubled
    assert a.equals(b)


@pytest.mark.gpu
@pytest.mark.slow
def test_mtcnn_on_cuda_tracks_the_face_as_on_the_cpu():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    frames, _ = face_clip(40, shift=3)  # 640 x 480, more than one batch of 32
    settings = MtcnnSettings()
    cpu = faces.face_track(detect_boxes(frames, settings, "cpu"), settings)
    gpu = faces.face_track(detect_boxes(frames, settings, "cuda"), settings)
    assert float(faces.box_iou(cpu, gpu).min()) > 0.95
    crops = faces.crop_faces_mtcnn(frames, 64, settings, "cuda")
    assert len(crops) == 40 and crops[0].shape == (64, 64, 3)
