"""Face crops: fixed patch coordinates, box filling / smoothing / squaring, MTCNN on a real face."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from maedfer.data.faces import (
    MtcnnSettings,
    NoFaceError,
    crop_box,
    crop_faces_mtcnn,
    crop_frames,
    detect_boxes,
    face_track,
    fill_missing_boxes,
    fixed_upper_centre_box,
    get_detector,
    largest_boxes,
    smooth_boxes,
    square_boxes,
)
from maedfer.data.records import FaceMode

CACHE = Path(os.environ.get("MAEDFER_CACHE", Path.home() / ".cache" / "maedfer"))
# Where the astronaut (Eileen Collins, NASA, public domain) face lies in skimage's 512 x 512 image.
ASTRONAUT_FACE = (181, 62, 268, 172)  # x1, y1, x2, y2


def astronaut() -> np.ndarray:
    """A real face photo (RGB 512 x 512), taken once from the scikit-image wheel and cached.

    The wheel is fetched with ``pip download`` (never installed); only the png is kept.
    """
    png = CACHE / "astronaut.png"
    if not png.is_file():
        wheels = CACHE / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        if not list(wheels.glob("scikit_image-*.whl")):
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "scikit-image"]
            done = subprocess.run([*cmd, "-d", str(wheels)], capture_output=True, timeout=600)
            if done.returncode != 0:
                pytest.skip("no real face image: `pip download scikit-image` failed (offline?)")
        wheel = sorted(wheels.glob("scikit_image-*.whl"))[-1]
        with zipfile.ZipFile(wheel) as zf:
            png.write_bytes(zf.read("skimage/data/astronaut.png"))
    image = cv2.imread(str(png), cv2.IMREAD_COLOR)
    assert image is not None, f"{png} unreadable: delete it to fetch it again"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def face_clip(n: int = 10, blank: tuple[int, ...] = (), shift: int = 4) -> tuple[list[np.ndarray], np.ndarray]:
    """640 x 480 frames with the astronaut moving right by ``shift`` px per frame; ``blank`` frames are grey.

    Returns the frames and the face box (x1, y1, x2, y2) of each frame.
    """
    image = astronaut()[:480]
    frames, boxes = [], []
    for t in range(n):
        frame = np.full((480, 640, 3), 40, np.uint8)
        x = 40 + shift * t
        if t not in blank:
            frame[:, x : x + 512] = image[:, : 640 - x]
        frames.append(frame)
        boxes.append(np.add(ASTRONAUT_FACE, (x, 0, x, 0)))
    return frames, np.asarray(boxes, dtype=float)


# ----------------------------------------------------------------------------------------------
# Fixed and pre-cropped


def coordinate_frame(height: int, width: int) -> np.ndarray:
    """Channel 0 = row index, channel 1 = column index (mod 256), channel 2 = 7."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([rows % 256, cols % 256, np.full_like(rows, 7)], axis=-1).astype(np.uint8)


def test_fixed_upper_centre_coordinates():
    frame = coordinate_frame(224, 224)
    (crop,) = crop_frames([frame], FaceMode.FIXED_UPPER_CENTRE, 160)
    assert crop.shape == (160, 160, 3)
    np.testing.assert_array_equal(crop, frame[0:160, 32:192])
    assert crop[0, 0, 0] == 0 and crop[-1, 0, 0] == 159 and crop[0, 0, 1] == 32 and crop[0, -1, 1] == 191
    # Other sizes: the same fractions of the frame.
    assert fixed_upper_centre_box(224, 224) == (0, 160, 32, 192)
    assert fixed_upper_centre_box(448, 448) == (0, 320, 64, 384)
    assert fixed_upper_centre_box(112, 224) == (0, 80, 32, 192)
    big = cv2.resize(frame, (448, 448), interpolation=cv2.INTER_NEAREST)
    (crop_big,) = crop_frames([big], FaceMode.FIXED_UPPER_CENTRE, 160)
    assert crop_big.shape == (160, 160, 3)
    assert np.abs(crop_big.astype(int) - frame[0:160, 32:192]).max() <= 1
    (small,) = crop_frames([frame], FaceMode.FIXED_UPPER_CENTRE, 112)
    assert small.shape == (112, 112, 3)


def test_precropped_resize():
    frames = [coordinate_frame(224, 224), coordinate_frame(180, 200)]
    crops = crop_frames(frames, FaceMode.PRECROPPED, 160)
    assert [c.shape for c in crops] == [(160, 160, 3), (160, 160, 3)]
    assert crop_frames([coordinate_frame(160, 160)], FaceMode.PRECROPPED, 160)[0].tobytes() == (
        coordinate_frame(160, 160).tobytes()
    )


# ----------------------------------------------------------------------------------------------
# Box tracking on synthetic boxes


def test_largest_boxes_from_detector_output():
    boxes = np.array(
        [
            None,
            np.array([[0, 0, 10, 10], [0, 0, 30, 30]], dtype=np.float32),  # keep the larger
            np.array([[0, 0, 50, 50], [5, 5, 25, 25]], dtype=np.float32),  # larger one is unsure
        ],
        dtype=object,
    )
    probs = np.array([[None], np.array([0.99, 0.95]), np.array([0.5, 0.97])], dtype=object)
    got = largest_boxes(boxes, probs, min_prob=0.9)
    assert np.isnan(got[0]).all()
    np.testing.assert_array_equal(got[1], [0, 0, 30, 30])
    np.testing.assert_array_equal(got[2], [5, 5, 25, 25])


def test_fill_missing_boxes_interpolates_gaps():
    boxes = np.full((8, 4), np.nan)
    boxes[2] = [10, 20, 50, 60]
    boxes[5] = [40, 20, 80, 90]
    boxes[6] = [41, 21, 81, 91]
    filled = fill_missing_boxes(boxes)
    np.testing.assert_allclose(filled[0], boxes[2])  # before the first detection: nearest
    np.testing.assert_allclose(filled[1], boxes[2])
    np.testing.assert_allclose(filled[3], [20, 20, 60, 70])  # one third of the way from 2 to 5
    np.testing.assert_allclose(filled[4], [30, 20, 70, 80])
    np.testing.assert_allclose(filled[7], boxes[6])  # after the last: nearest
    with pytest.raises(NoFaceError):
        fill_missing_boxes(np.full((5, 4), np.nan))


def test_smooth_boxes_removes_a_jump_and_keeps_constant_tracks():
    steady = np.tile([100.0, 50.0, 200.0, 170.0], (12, 1))
    np.testing.assert_allclose(smooth_boxes(steady, 5), steady)
    jumpy = steady.copy()
    jumpy[6] += [90, 0, 90, 0]  # one wrong detection
    smoothed = smooth_boxes(jumpy, 5)
    assert smoothed.shape == (12, 4)
    assert np.abs(smoothed - steady).max() < 1e-9  # the median removes a single outlier
    ramp = steady + np.arange(12)[:, None] * [3.0, 0, 3.0, 0]  # steady motion is followed
    np.testing.assert_allclose(smooth_boxes(ramp, 5)[4:8], ramp[4:8])
    np.testing.assert_allclose(smooth_boxes(jumpy, 1), jumpy)


def test_square_boxes_and_padded_crop():
    sq = square_boxes(np.array([[10.0, 20.0, 50.0, 100.0]]), margin=0.25)  # w 40, h 80
    np.testing.assert_allclose(sq, [[-20.0, 10.0, 80.0, 110.0]])  # side 100 around centre (30, 60)
    frame = np.full((100, 100, 3), 255, np.uint8)
    crop = crop_box(frame, sq[0], 100)
    assert crop.shape == (100, 100, 3)
    assert (crop[:, :20] == 0).all() and (crop[:90, 20:] == 255).all() and (crop[90:] == 0).all()
    track = face_track(np.array([[0, 0, 10, 20], [np.nan] * 4, [4, 0, 14, 20]], float), MtcnnSettings())
    np.testing.assert_allclose(track[:, 2] - track[:, 0], 25.0)
    np.testing.assert_allclose(track[:, 3] - track[:, 1], 25.0)


# ----------------------------------------------------------------------------------------------
# MTCNN on a real face


@pytest.mark.slow
def test_mtcnn_on_a_real_face():
    frames, truth = face_clip(10, blank=(4, 5))
    settings = MtcnnSettings()
    detected = detect_boxes(frames, settings, device="cpu")
    assert np.isnan(detected[[4, 5]]).all()  # grey frames: no face
    found = np.delete(np.arange(10), [4, 5])
    assert np.abs(detected[found] - truth[found]).max() < 15  # boxes on the face
    track = face_track(detected, settings)
    centre = (track[:, :2] + track[:, 2:]) / 2
    true_centre = (truth[:, :2] + truth[:, 2:]) / 2
    assert np.abs(centre - true_centre).max() < 10  # the gap takes its box from the neighbours
    crops = crop_faces_mtcnn(frames, 160, settings, device="cpu")
    assert len(crops) == 10 and all(c.shape == (160, 160, 3) for c in crops)
    # The crop holds the face, centred: detecting again finds it in the middle.
    boxes, probs = get_detector("cpu").detect(np.stack([crops[0], crops[8]]))
    for b in boxes:
        box = np.asarray(b, dtype=float)[0]
        assert abs((box[0] + box[2]) / 2 - 80) < 12 and abs((box[1] + box[3]) / 2 - 80) < 16
        assert (box[3] - box[1]) > 110  # the face fills most of the crop (margin 0.25)
    assert get_detector("cpu") is get_detector("cpu")


@pytest.mark.slow
def test_mtcnn_no_face_raises():
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(6)]
    with pytest.raises(NoFaceError):
        crop_frames(noise, FaceMode.MTCNN, 160, device="cpu")
