"""Per-clip work of the ingest stage: decode, crop and JPEG-encode one clip, in order, in a process pool.

The functions are top-level so that they pickle into the worker processes (``workers > 0``).
"""

from __future__ import annotations

import collections
import multiprocessing
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from maedfer.data.faces import MtcnnSettings, NoFaceError, crop_frames, store_frames
from maedfer.data.ingest_stop import ignore_stop_signals
from maedfer.data.records import FaceMode
from maedfer.data.video_io import FrameReadError, ShortVideoError, UnreadableVideoError, read_frames

# Skip reasons (keys of report["skipped"]).
UNREADABLE_VIDEO = "unreadable_video"
UNREADABLE_FRAME = "unreadable_frame"
DECODED_SHORT = "decoded_short"  # a video that decodes fewer frames than its container lists
NO_FACE = "no_face"
MISSING_SOURCE = "missing_source"
DUPLICATE_ID = "duplicate_clip_id"
ERROR = "error"  # anything else raised while reading or cropping one clip
# Reasons that depend only on the source and the settings: not retried while both are unchanged.
REMEMBERED = frozenset({UNREADABLE_VIDEO, UNREADABLE_FRAME, DECODED_SHORT, NO_FACE})


@dataclass(frozen=True)
class ClipTask:
    """One clip to decode: its id, source path and the crop/encode settings.

    ``store_size`` None stores ``size`` x ``size`` crops (the default); ``"source"`` or an int
    stores them at that size instead (see :func:`~maedfer.data.faces.store_frames`). ``mtcnn``
    set: an MTCNN clip is detected and cropped in the worker (on the CPU), not returned as frames.
    """

    clip_id: str
    path: str
    face_mode: str
    size: int
    jpeg_quality: int
    store_size: int | str | None = None
    mtcnn: MtcnnSettings | None = None


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    """RGB uint8 (H, W, 3) -> JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def skip_reason(exc: BaseException) -> str:
    """The skip reason (report key) of an exception raised while preparing one clip."""
    if isinstance(exc, UnreadableVideoError):
        return UNREADABLE_VIDEO
    if isinstance(exc, ShortVideoError):
        return DECODED_SHORT
    if isinstance(exc, FrameReadError):  # UnreadableFrameError and any other frame read failure
        return UNREADABLE_FRAME
    if isinstance(exc, NoFaceError):
        return NO_FACE
    if isinstance(exc, FileNotFoundError):
        return MISSING_SOURCE
    return ERROR


def skip_extra(exc: BaseException) -> dict[str, Any]:
    """Structured details of a skip for the report (the frame counts of a video that decodes short)."""
    if isinstance(exc, ShortVideoError):
        return {"decoded_frames": exc.decoded, "container_frames": exc.declared}
    return {}


def skip_payload(exc: BaseException) -> tuple[str, str, dict[str, Any]]:
    """(reason, one-line message, details) of a clip's failure."""
    return skip_reason(exc), f"{type(exc).__name__}: {exc}", skip_extra(exc)


def prepare_clip(task: ClipTask) -> tuple[str, Any, float]:
    """Decode (and, except for MTCNN in the main process, crop + encode) one clip.

    Returns ("jpeg", list of JPEG bytes, fps), ("frames", list of RGB frames, fps) for MTCNN
    when detection runs in the main process (``task.mtcnn`` None), or ("skip", (reason, message,
    details), 0.0).
    """
    try:
        frames, fps = read_frames(task.path)
        mode = FaceMode(task.face_mode)
        if mode is FaceMode.MTCNN and task.mtcnn is None:
            return "frames", frames, fps
        if mode is FaceMode.MTCNN:  # detection here, in a worker process: one torch thread each
            _one_torch_thread()
            side = task.size if task.store_size is None else int(task.store_size)
            crops = crop_frames(frames, mode, side, task.mtcnn, "cpu")
        elif task.store_size is None:
            crops = crop_frames(frames, mode, task.size)
        else:
            crops = store_frames(frames, mode, task.store_size)
        return "jpeg", [encode_jpeg(c, task.jpeg_quality) for c in crops], fps
    except Exception as exc:  # one clip's failure must never stop the run
        return "skip", skip_payload(exc), 0.0


def _one_torch_thread() -> None:
    """Limit torch to one thread in a worker process (N workers share the cores)."""
    import torch

    if multiprocessing.parent_process() is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


class ClipPipeline:
    """Runs ``prepare_clip`` in order, in this process (workers=0) or in a bounded process pool."""

    def __init__(self, workers: int) -> None:
        self.workers = max(0, int(workers))
        self.pool: ProcessPoolExecutor | None = None
        if self.workers:
            self.pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=ignore_stop_signals
            )
        self.window = 2 * self.workers + 2

    def run(self, items: Iterable[tuple[Any, ClipTask | None]]) -> Iterator[tuple[Any, tuple[str, Any, float] | None]]:
        """For (payload, task or None) pairs, yield (payload, result or None) in input order."""
        if self.pool is None:
            for payload, task in items:
                yield payload, (prepare_clip(task) if task is not None else None)
            return
        pending: collections.deque[tuple[Any, Future | None]] = collections.deque()
        for payload, task in items:
            pending.append((payload, self.pool.submit(prepare_clip, task) if task is not None else None))
            while pending and (len(pending) > self.window or pending[0][1] is None or pending[0][1].done()):
                head, future = pending.popleft()
                yield head, (future.result() if future is not None else None)
        while pending:
            head, future = pending.popleft()
            yield head, (future.result() if future is not None else None)

    def close(self) -> None:
        """Shut the process pool down (cancelling what has not started)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
