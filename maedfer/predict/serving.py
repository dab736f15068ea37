"""A served model's input from a video: the face crops of one window, as ``mlflow models serve`` takes them.

    clip = serving_clip("face_video.mp4")                  # uint8 (1, 16, 160, 160, 3)
    json.dump({"inputs": clip.tolist()}, open("clip.json", "w"))

The crops are made as ``maedfer predict`` makes them (MTCNN, the largest face, the ingest stage's crop
and JPEG round trip); the window is the first of the video (``num_frames`` frames every ``frame_stride``).
"""

from __future__ import annotations

import os

import numpy as np

from maedfer.constants import DEFAULT_STRIDE, IMG_SIZE


def serving_clip(
    video: str | os.PathLike,
    num_frames: int = 16,
    frame_stride: int = DEFAULT_STRIDE,
    start: int = 0,
    detect_every: int = 3,
) -> np.ndarray:
    """uint8 RGB face crops (1, num_frames, 160, 160, 3) of the window at frame ``start`` of ``video``."""
    from maedfer.data.datasets import decode_frames
    from maedfer.data.faces import MtcnnSettings, crop_box
    from maedfer.data.ingest_work import encode_jpeg
    from maedfer.data.video_io import read_frames
    from maedfer.predict.pipeline import INGEST_JPEG_QUALITY
    from maedfer.predict.tracks import largest_face_track
    from maedfer.predict.windows import plan_windows

    frames, _ = read_frames(video)
    if not 0 <= start < len(frames):
        raise ValueError(f"{video}: start frame {start} is outside its {len(frames)} frames")
    end = min(len(frames), start + num_frames * frame_stride)
    frames = frames[start:end]
    track = largest_face_track(frames, MtcnnSettings(), detect_every, "cpu")
    window = plan_windows(track.first, track.last, num_frames, frame_stride)[0]
    jpegs = [encode_jpeg(crop_box(frames[i], track.crop_box(i), IMG_SIZE), INGEST_JPEG_QUALITY)
             for i in window.indices]
    crops = decode_frames(jpegs)  # (T, 3, S, S) uint8
    return crops.permute(0, 2, 3, 1).numpy()[None]  # (1, T, S, S, 3)
