"""The ingest stage: records -> decoded frames -> face crops -> JPEG -> Parquet shards + index.

``ingest`` is resumable and idempotent:

* every clip is stored with a *key*: a fingerprint of the ingest settings (face mode, size,
  JPEG quality, MTCNN settings, format version) and of its source (path, kind, and file size
  + modification time for a video, or the list of image names for a frame folder);
* finished shards carry their clips' keys in their footers, so an interrupted run keeps them
  and a re-run only decodes clips whose key is not stored yet;
* clips skipped by a previous complete run (broken video, unreadable frame, no face) are
  remembered in ``<out>/ingest_state.json`` with their key and not retried while unchanged;
* the index, the state file and the report are written only when their content changes, so
  re-running on unchanged input rewrites nothing.

A broken video, a video that decodes short of its container's frame count, an unreadable frame,
a missing source or a clip without a face is skipped and reported in ``<out>/report.json``, never
fatal. SIGTERM/SIGINT close the open shard at a clip boundary (:mod:`maedfer.data.ingest_stop`);
off a terminal, progress goes to the log (:mod:`maedfer.data.ingest_progress`).

``store_size`` (opt-in; None by default, which stores ``size`` x ``size`` crops exactly as
before, with the same fingerprints) stores the crops at the source's resolution (``"source"``)
or at another square size, and records ``load_resize: pil_bilinear`` in the index metadata:
the loaders then resize each decoded frame to the model input with PIL's bilinear filter, as
the authors' loader does with their original frames (see ``benchmarks/pixel_fidelity.py``).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from maedfer.data.faces import MtcnnSettings, check_store_size, crop_faces_mtcnn, default_device
from maedfer.data.ingest_progress import IngestProgress
from maedfer.data.ingest_report import IngestReport, jsonable
from maedfer.data.ingest_stop import IngestInterrupted, StopSignals
from maedfer.data.ingest_work import (
    DUPLICATE_ID,
    MISSING_SOURCE,
    REMEMBERED,
    ClipPipeline,
    ClipTask,
    encode_jpeg,
    skip_payload,
)
from maedfer.data.records import ClipRecord, FaceMode, SourceKind
from maedfer.data.shards import (
    DEFAULT_SHARD_BYTES,
    INDEX_NAME,
    SHARD_DIR,
    SHARD_FORMAT,
    ShardError,
    ShardWriter,
    StoredClip,
    build_index_table,
    list_shards,
    write_index,
)
from maedfer.data.video_io import list_frame_files
from maedfer.io_utils import write_json_atomic

log = logging.getLogger(__name__)

STATE_NAME = "ingest_state.json"
REPORT_NAME = "report.json"
STATE_VERSION = 1
LOAD_RESIZE = "pil_bilinear"  # index metadata ``load_resize`` of a store_size ingest (read by the loaders)


# ----------------------------------------------------------------------------------------------
# Fingerprints


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def ingest_settings(
    face_mode: FaceMode,
    size: int,
    jpeg_quality: int,
    mtcnn: MtcnnSettings | None,
    store_size: int | str | None = None,
) -> dict[str, Any]:
    """Everything that changes the stored bytes of a clip (not the shard size bound).

    ``store_size`` None adds no key, so the default's fingerprint is the one it always had.
    """
    settings: dict[str, Any] = {
        "shard_format": SHARD_FORMAT,
        "face_mode": FaceMode(face_mode).value,
        "size": int(size),
        "jpeg_quality": int(jpeg_quality),
        "mtcnn": _mtcnn_key(mtcnn) if FaceMode(face_mode) is FaceMode.MTCNN else None,
        "encoder": f"opencv-{cv2.__version__.split('.')[0]}",
    }
    if store_size is not None:
        settings["store_size"] = store_size
        settings["load_resize"] = LOAD_RESIZE
    return settings


def _mtcnn_key(mtcnn: MtcnnSettings | None) -> dict[str, Any]:
    """MTCNN settings in the fingerprint; ``detect_every`` only when not 1 (old fingerprints stay valid)."""
    key = asdict(mtcnn or MtcnnSettings())
    if key.get("detect_every") == 1:
        del key["detect_every"]
    return key


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(height, width) of a JPEG, read from its header (nothing decoded)."""
    with Image.open(io.BytesIO(data)) as img:
        return img.height, img.width


def source_key(record: ClipRecord, root: Path, settings_key: str) -> str:
    """Fingerprint of a record's source as found on disk plus the settings; FileNotFoundError if missing."""
    path = root / record.source
    if SourceKind(record.source_kind) is SourceKind.FRAMES:
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: frame folder not found")
        identity: Any = [p.name for p in list_frame_files(path)]
    else:
        stat = path.stat()  # raises FileNotFoundError
        identity = [stat.st_size, stat.st_mtime_ns]
    return _sha([settings_key, record.source, SourceKind(record.source_kind).value, identity])[:32]


# ----------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _index_row(record: ClipRecord, clip: StoredClip) -> dict[str, Any]:
    return {
        "clip_id": record.clip_id,
        "label": int(record.label),
        "label_name": record.label_name,
        "subject": None if record.subject is None else str(record.subject),
        "train_folds": [int(f) for f in record.train_folds],
        "test_folds": [int(f) for f in record.test_folds],
        "shard": clip.shard,
        "row": clip.row,
        "num_frames": clip.num_frames,
        "height": clip.height,
        "width": clip.width,
        "fps": clip.fps,
        "checksum": clip.checksum,
        "source": record.source,
    }


def ingest(
    records: Iterable[ClipRecord],
    root: str | os.PathLike,
    out: str | os.PathLike,
    face_mode: FaceMode,
    size: int = 160,
    jpeg_quality: int = 90,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    workers: int = 0,
    mtcnn: MtcnnSettings | None = None,
    device: str | None = None,
    dataset: str = "",
    class_names: Sequence[str] = (),
    num_folds: int | None = None,
    adapter_skipped: Sequence[Any] = (),
    progress: bool | None = None,
    store_size: int | str | None = None,
    progress_seconds: float = 30.0,
) -> IngestReport:
    """Decode, crop and shard ``records`` (sources relative to ``root``) into ``out``.

    Writes ``out/shards/shard-NNNNN.parquet``, ``out/index.parquet`` (INDEX_COLUMNS; schema
    metadata ``maedfer.dataset``, ``maedfer.class_names`` (JSON), ``maedfer.num_folds``, ...),
    ``out/ingest_state.json`` and ``out/report.json``. ``workers`` > 0 decodes in that many
    processes; MTCNN runs in this process, batched, on ``device`` (default: CUDA when available),
    except on the CPU with ``workers`` > 0, where each worker detects its own clips (one torch
    thread each). ``num_folds`` defaults to the highest fold number in the records. ``progress``
    None shows a progress bar only on a terminal, and otherwise logs a progress line (clips done,
    rate, time left) every ``progress_seconds``. ``store_size`` (None: ``size``; ``"source"``; an int) is the
    stored frame size; when given, the loaders resize to the model input (PIL bilinear). Worker
    processes are spawned, so a script that calls
    this with ``workers`` > 0 needs the usual ``if __name__ == "__main__":`` guard.

    SIGTERM or SIGINT stops the run at the next clip boundary: the open shard is closed (a re-run
    resumes from it), no index is written, and :class:`IngestInterrupted` says so.
    """
    start = time.perf_counter()
    root, out = Path(root), Path(out)
    face_mode = FaceMode(face_mode)
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    mtcnn = mtcnn or MtcnnSettings()
    store_size = check_store_size(store_size, face_mode)
    settings = ingest_settings(face_mode, size, jpeg_quality, mtcnn, store_size)
    settings_key = _sha(settings)[:32]
    state_path, report_path, index_path = out / STATE_NAME, out / REPORT_NAME, out / INDEX_NAME
    old_state = _read_json(state_path) or {}
    old_skips: dict[str, Any] = old_state.get("skipped", {}) if old_state.get("settings_key") == settings_key else {}

    report = IngestReport(
        dataset=dataset,
        out=str(out),
        face_mode=face_mode.value,
        size=int(size),
        class_names=list(class_names),
    )
    rows: list[dict[str, Any]] = []
    skips: dict[str, dict[str, str]] = {}
    record_keys: list[str] = []
    seen_ids: set[str] = set()
    max_fold = 0
    changed_shards = False

    def skip(record: ClipRecord, reason: str, detail: str, key: str | None, known: bool = False,
             extra: dict[str, Any] | None = None) -> None:
        report.skipped.setdefault(reason, []).append(record.clip_id)
        report.skipped_detail[record.clip_id] = detail
        if extra:
            report.skipped_counts_detail[record.clip_id] = dict(extra)
        if key is not None and reason in REMEMBERED:
            skips[record.clip_id] = {"reason": reason, "detail": detail, "key": key}
            if extra:
                skips[record.clip_id]["extra"] = dict(extra)
        level = logging.INFO if known else logging.WARNING  # known: skipped by the previous run already
        log.log(level, "skipping %s (%s): %s", record.clip_id, reason, detail)

    def plan(writer: ShardWriter) -> Iterator[tuple[Any, ClipTask | None]]:
        nonlocal max_fold
        for record in records:
            report.seen += 1
            max_fold = max([max_fold, *record.train_folds, *record.test_folds])
            if record.clip_id in seen_ids:
                yield (record, None, ("skip", (DUPLICATE_ID, "clip id listed twice; kept the first"))), None
                continue
            seen_ids.add(record.clip_id)
            try:
                key = source_key(record, root, settings_key)
            except OSError as exc:
                yield (record, None, ("skip", (MISSING_SOURCE, str(exc)))), None
                continue
            record_keys.append(f"{record.clip_id}:{key}")
            stored = writer.lookup(record.clip_id, key)
            if stored is not None:
                yield (record, key, ("stored", stored)), None
            elif old_skips.get(record.clip_id, {}).get("key") == key:
                prev = old_skips[record.clip_id]
                yield (record, key, ("known", (prev["reason"], prev["detail"], prev.get("extra")))), None
            else:
                path = str(root / record.source)
                task = ClipTask(record.clip_id, path, face_mode.value, int(size), int(jpeg_quality), store_size,
                                worker_mtcnn)
                yield (record, key, None), task

    def _handle(writer: ShardWriter, record: ClipRecord, key: str | None, known: Any, result: Any) -> int:
        """Store or skip one clip; returns the frames written."""
        nonlocal changed_shards
        if known is not None:
            kind, value = known
            if kind == "stored":
                report.reused += 1
                rows.append(_index_row(record, value))
            else:
                skip(record, value[0], value[1], key, known=kind == "known", extra=value[2] if len(value) > 2 else None)
            return 0
        assert result is not None
        kind, payload, fps = result
        if kind == "frames":  # MTCNN in this process: detect + crop
            try:
                side = size if store_size is None else int(store_size)  # "source" refused for MTCNN
                crops = crop_faces_mtcnn(payload, side, mtcnn, device)
                payload = [encode_jpeg(c, jpeg_quality) for c in crops]
                kind = "jpeg"
            except Exception as exc:
                kind, payload = "skip", skip_payload(exc)
        if kind == "skip":
            skip(record, payload[0], payload[1], key, extra=payload[2] if len(payload) > 2 else None)
            return 0
        height, width = (size, size) if store_size is None else jpeg_size(payload[0])
        clip = writer.add(record.clip_id, payload, height=height, width=width, fps=fps, key=key)
        changed_shards = True
        report.written += 1
        report.frames_written += clip.num_frames
        rows.append(_index_row(record, clip))
        return clip.num_frames

    worker_mtcnn = None  # MTCNN in the workers: on the CPU with workers > 0 (a GPU batches in this process)
    if face_mode is FaceMode.MTCNN and workers > 0 and (device or default_device()) == "cpu":
        worker_mtcnn = mtcnn
    total = len(records) if hasattr(records, "__len__") else None  # type: ignore[arg-type]
    progress_log = IngestProgress(f"ingest {dataset}".strip(), total, progress, progress_seconds)
    pipeline = ClipPipeline(workers)
    try:
        with StopSignals() as stop, ShardWriter(out, settings_key, shard_bytes) as writer:
            for (record, key, known), result in pipeline.run(plan(writer)):
                frames = _handle(writer, record, key, known, result)
                progress_log.update(decoded=result is not None, frames=frames)
                if stop.requested:
                    break
    finally:
        pipeline.close()
        progress_log.close()
    if stop.signum is not None:
        raise IngestInterrupted(stop.signum, progress_log.done, total, str(out / SHARD_DIR))

    # Index, state and report: rewritten only when their content changes.
    report.adapter_skipped = jsonable(list(adapter_skipped))  # an adapter fills it while iterating
    report.stored = len(rows)
    report.frames_stored = sum(r["num_frames"] for r in rows)
    metadata = {
        "dataset": dataset,
        "class_names": json.dumps(list(class_names)),
        "num_folds": str(max_fold if num_folds is None else int(num_folds)),
        "face_mode": face_mode.value,
        "size": str(size),
        "settings": json.dumps(settings, sort_keys=True),
    }
    if store_size is not None:  # absent by default: today's indices stay byte-identical
        metadata["store_size"] = str(store_size)
        metadata["load_resize"] = LOAD_RESIZE
    table = build_index_table(rows, metadata)
    changed = changed_shards
    if not _same_index(index_path, table):
        write_index(index_path, table)
        changed = True
    referenced = {r["shard"] for r in rows}
    for path in list_shards(out):
        if f"shards/{path.name}" not in referenced:
            log.info("removing %s: no clip of the index is stored in it", path)
            path.unlink()
            changed = True
    state = {
        "version": STATE_VERSION,
        "settings": settings,
        "settings_key": settings_key,
        "records_key": _sha(record_keys),
        "skipped": dict(sorted(skips.items())),
    }
    if state != old_state:
        write_json_atomic(state_path, state)
        changed = True

    report.shards = len(referenced)
    report.bytes_on_disk = index_path.stat().st_size + sum((out / s).stat().st_size for s in referenced)
    report.seconds = round(time.perf_counter() - start, 3)
    report.frames_per_second = round(report.frames_written / max(report.seconds, 1e-9), 2)
    report.up_to_date = not changed
    if changed or not report_path.is_file():
        write_json_atomic(report_path, report.to_json())
    log.info(
        "%s: %d clips stored (%d written, %d reused), %d skipped, %.1f MB, %.1f s%s",
        dataset or out,
        report.stored,
        report.written,
        report.reused,
        report.num_skipped,
        report.bytes_on_disk / 2**20,
        report.seconds,
        " (up to date: nothing rewritten)" if report.up_to_date else "",
    )
    return report


def _same_index(index_path: Path, table: pa.Table) -> bool:
    if not index_path.is_file():
        return False
    try:
        old = pq.read_table(index_path)
        return old.schema.metadata == table.schema.metadata and old.cast(table.schema).equals(table)
    except (OSError, ValueError, ShardError, pa.ArrowException):
        return False
