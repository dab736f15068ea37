"""The records that flow between dataset adapters, the face-crop/shard stage and the loaders.

Contract (shared by every part of ``maedfer.data``):

* An adapter (``maedfer.data.adapters``) reads a dataset in its owners' layout and yields
  :class:`ClipRecord` objects. It never decodes video.
* The ingest stage reads each record's frames, crops faces (per ``FaceMode``), encodes
  frames as JPEG and writes Parquet shards plus one index Parquet per dataset, whose
  columns are :data:`INDEX_COLUMNS`.
* Loaders read only the index and the shards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class FaceMode(StrEnum):
    """How the ingest stage turns raw frames into face crops."""

    FIXED_UPPER_CENTRE = "fixed_upper_centre"  # VoxCeleb2: rows 0-159, cols 32-191 of 224x224
    PRECROPPED = "precropped"  # owners' face-cropped frames (DFEW, FERV39k, MAFW): resize only
    MTCNN = "mtcnn"  # detect + track + square crop with margin (lab datasets, any raw video)


class SourceKind(StrEnum):
    """How a clip's source is stored."""
    VIDEO = "video"  # one video file
    FRAMES = "frames"  # a folder of image files, frame order = natural sort of file names


@dataclass(frozen=True)
class ClipRecord:
    """One clip as the owners' layout describes it."""

    clip_id: str  # unique within the dataset, stable across runs (e.g. DFEW "00001")
    source: str  # path relative to the dataset root: a video file or a frame folder
    source_kind: SourceKind
    label: int = -1  # class index, -1 when unlabelled (VoxCeleb2)
    label_name: str = ""
    subject: str | None = None  # actor/speaker/subject id where known
    train_folds: tuple[int, ...] = field(default_factory=tuple)  # folds (1-based) whose train set holds it
    test_folds: tuple[int, ...] = field(default_factory=tuple)  # folds (1-based) whose test set holds it


# Columns of the per-dataset index Parquet (``<out>/<dataset>/index.parquet``), in order.
INDEX_COLUMNS: tuple[str, ...] = (
    "clip_id",  # string
    "label",  # int16, -1 if unlabelled
    "label_name",  # string
    "subject",  # string, nullable
    "train_folds",  # list<int8>
    "test_folds",  # list<int8>
    "shard",  # string: shard file name relative to the index's folder
    "row",  # int32: row (= row group) of the clip inside its shard
    "num_frames",  # int32
    "height",  # int16: stored frame size
    "width",  # int16
    "fps",  # float32, source frame rate (0 if unknown)
    "checksum",  # string: sha256 hex of the clip's JPEG bytes, concatenated in frame order
    "source",  # string: the record's source path, relative to the dataset root
)


# Shard files (``<out>/<dataset>/shards/shard-00000.parquet``, ...): Parquet, ONE ROW GROUP PER CLIP
# (so a loader reads one clip without touching the others), rows in clip order, columns:
SHARD_COLUMNS: tuple[str, ...] = (
    "clip_id",  # string
    "frames",  # list<binary>: one encoded JPEG per stored frame, in time order
    "num_frames",  # int32
)
# A shard is closed when its encoded size reaches the bound (default 256 MB); the index's
# ``shard`` and ``row`` columns locate each clip. Reading API (maedfer.data.shards):
#   read_index(index_path) -> pyarrow.Table
#   read_clip_frames(shard_path, row, frame_indices) -> list[bytes]   (only the requested frames)
