"""Pixels: the opt-in stored-at-source-size path against the authors' PIL-bilinear load, and the default unchanged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from maedfer.data.datasets import FinetuneDataset, PretrainDataset, SelectionError, ShardClipDataset
from maedfer.data.faces import check_store_size, store_frames
from maedfer.data.ingest import ingest
from maedfer.data.records import ClipRecord, FaceMode, SourceKind
from maedfer.data.shards import index_metadata, read_index
from maedfer.data.transforms import pil_bilinear_resize
from maedfer.workflow.profile import load_profile

ROOT = Path(__file__).resolve().parents[1]
# Computed with the code before store_size existed (commit 2084d86): the default path must not move a bit.
DEFAULT_LOADED_SHA256 = "d5cb2bc3d06865b1c32a89333d8ce6a6d2dc42a98e9687aec106815529ba374a"
DEFAULT_CHECKSUMS = ["81f77d4fa451230eb2f31631cadd357d5c8086b0fc4424b2018dcdac2181385f",
                     "47fff007240c34321387c01e211610c2b7bdc58d682082e54b832dff859be21e"]
TOLERANCE = 1.0  # mean |difference| in /255 pixel units allowed against the authors' load path


def pattern_frames(n: int = 10, h: int = 120, w: int = 150) -> list[np.ndarray]:
    """Deterministic RGB frames with smooth areas, stripes and hard edges."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = []
    for t in range(n):
        r = 127 + 100 * np.sin(xx / 7.0 + t) * np.cos(yy / 11.0)
        g = (xx * 3 + yy * 2 + 17 * t) % 256
        b = 255 * ((xx // 9 + yy // 13 + t) % 2)
        out.append(np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8))
    return out


def smooth_frames(n: int = 4, h: int = 200, w: int = 300) -> list[np.ndarray]:
    """Deterministic camera-like RGB frames: smooth shading, soft edges and mild noise."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = []
    for t in range(n):
        blob = 120 * np.exp(-((xx - w / 2 - 5 * t) ** 2 / (0.05 * w * w) + (yy - h / 2) ** 2 / (0.08 * h * h)))
        r = 60 + blob + 40 * np.sin(xx / 13.0 + t)
        g = 50 + 0.8 * blob + 30 * np.cos(yy / 17.0)
        b = 40 + 0.5 * blob + 0.2 * xx
        img = np.stack([r, g, b], -1) + rng.normal(0, 2, (h, w, 3))
        out.append(cv2.GaussianBlur(img, (3, 3), 0).clip(0, 255).astype(np.uint8))
    return out


def natural_frame() -> tuple[str, np.ndarray]:
    """scikit-image's astronaut (installed, or already in the demo source cache), else a generated face-like frame."""
    try:
        from skimage import data

        return "astronaut", data.astronaut()
    except ImportError:
        pass
    from maedfer.demo.sources import SourceCache

    cached = SourceCache().root / "files" / "scikit-image" / "skimage" / "data" / "astronaut.png"
    if cached.is_file():
        return "astronaut", np.asarray(Image.open(cached).convert("RGB"))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32)
    blob = 150 * np.exp(-((xx - 128) ** 2 / 3000 + (yy - 110) ** 2 / 4500))
    img = np.stack([blob + 60 + xx * 0.2, blob * 0.8 + 40, blob * 0.6 + 30 + yy * 0.2], -1)
    img += rng.normal(0, 3, (256, 256, 3))
    return "generated", cv2.GaussianBlur(img, (3, 3), 0).clip(0, 255).astype(np.uint8)


def write_clips(root: Path, clips: list[list[np.ndarray]]) -> list[ClipRecord]:
    """Lossless (PNG) frame folders, one per clip, labelled 0, 1, ... in fold 1's train and test sets."""
    records = []
    for c, frames in enumerate(clips):
        folder = root / f"c{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(frames):
            cv2.imwrite(str(folder / f"{t:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        records.append(ClipRecord(f"c{c}", f"c{c}", SourceKind.FRAMES, label=c, label_name=str(c),
                                  train_folds=(1,), test_folds=(1,)))
    return records


def pil_reference(frame: np.ndarray, size: int) -> np.ndarray:
    """The authors' load path, written here independently: PIL bilinear to size x size."""
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.BILINEAR))


def loaded(index: Path, size: int) -> np.ndarray:
    """All frames of clip 0 as the loader hands them to the transforms, HWC int16."""
    ds = ShardClipDataset(index, size=size)
    return ds.read_frames(0, np.arange(int(ds.num_frames[0]))).permute(0, 2, 3, 1).numpy().astype(np.int16)


# ----------------------------------------------------------------------------------------------


def test_default_path_is_unchanged_bit_for_bit(tmp_path):
    """A tiny default ingest loads to exactly the tensors the code gave before store_size existed."""
    base = pattern_frames()
    records = write_clips(tmp_path / "raw", [base, [np.roll(f, 5, 1) for f in base]])
    ingest(records, tmp_path / "raw", tmp_path / "out", FaceMode.PRECROPPED, size=64, jpeg_quality=90,
           dataset="toy", class_names=["a", "b"], progress=False)
    index = tmp_path / "out" / "index.parquet"
    table = read_index(index)
    assert table.column("checksum").to_pylist() == DEFAULT_CHECKSUMS
    meta = index_metadata(table)
    assert "load_resize" not in meta and "store_size" not in meta and "store_size" not in json.loads(meta["settings"])
    h = hashlib.sha256()
    for mode in ("train", "test"):
        ds = FinetuneDataset(index, 1, "test" if mode == "test" else "train", mode, stride=1, clip_len=4, size=48)
        assert ds.load_resize is None
        for i in range(len(ds)):
            h.update(ds[(i, 0)][0].numpy().tobytes())
    h.update(PretrainDataset(index, stride=1, clip_len=4, size=48)[(1, 0)].numpy().tobytes())
    assert h.hexdigest() == DEFAULT_LOADED_SHA256


@pytest.mark.parametrize("source", ["synthetic", "natural"])
def test_opt_in_path_agrees_with_pil_bilinear(tmp_path, source):
    """store_size: source + JPEG 95 + PIL at load is within TOLERANCE of PIL bilinear on the source frames."""
    if source == "synthetic":
        frames = smooth_frames()  # non-square: both squash the whole frame to the square
    else:
        _, frame = natural_frame()
        frames = [frame, np.ascontiguousarray(frame[:, ::-1])]
    records = write_clips(tmp_path / "raw", [frames])
    ref = np.stack([pil_reference(f, 160) for f in frames]).astype(np.int16)
    errors = {}
    for name, extra in (("today", {"jpeg_quality": 90}), ("opt-in", {"store_size": "source", "jpeg_quality": 95})):
        out = tmp_path / name
        ingest(records, tmp_path / "raw", out, FaceMode.PRECROPPED, size=160, dataset="toy", class_names=["a"],
               progress=False, **extra)
        errors[name] = np.abs(loaded(out / "index.parquet", 160) - ref).mean()
    assert errors["opt-in"] < TOLERANCE, errors
    assert errors["opt-in"] < errors["today"], errors  # and closer than the default path


def test_source_size_is_stored_and_resized_at_load(tmp_path):
    frames = pattern_frames(6, 90, 140)
    records = write_clips(tmp_path / "raw", [frames])
    ingest(records, tmp_path / "raw", tmp_path / "out", FaceMode.PRECROPPED, store_size="source",
           dataset="toy", class_names=["a"], progress=False)
    index = tmp_path / "out" / "index.parquet"
    table = read_index(index)
    assert (table.column("height")[0].as_py(), table.column("width")[0].as_py()) == (90, 140)
    meta = index_metadata(table)
    assert meta["load_resize"] == "pil_bilinear" and meta["store_size"] == "source"
    assert json.loads(meta["settings"])["store_size"] == "source"
    ds = FinetuneDataset(index, 1, "test", "test", stride=1, clip_len=4, size=64)
    assert tuple(ds[(0, 0)][0].shape) == (2, 3, 4, 64, 64)
    train = FinetuneDataset(index, 1, "train", "train", stride=1, clip_len=4, size=64)
    assert tuple(train[(0, 0)][0].shape) == (3, 4, 64, 64)
    # an integer store size: stored N x N, resized at load all the same
    ingest(records, tmp_path / "raw", tmp_path / "out96", FaceMode.PRECROPPED, store_size=96,
           dataset="toy", class_names=["a"], progress=False)
    assert read_index(tmp_path / "out96" / "index.parquet").column("height")[0].as_py() == 96
    assert loaded(tmp_path / "out96" / "index.parquet", 64).shape == (6, 64, 64, 3)


def test_changing_store_size_re_ingests(tmp_path):
    records = write_clips(tmp_path / "raw", [pattern_frames(3)])
    kw = dict(dataset="toy", class_names=["a"], progress=False)
    first = ingest(records, tmp_path / "raw", tmp_path / "out", FaceMode.PRECROPPED, **kw)
    again = ingest(records, tmp_path / "raw", tmp_path / "out", FaceMode.PRECROPPED, **kw)
    assert first.written == 1 and again.up_to_date
    source = ingest(records, tmp_path / "raw", tmp_path / "out", FaceMode.PRECROPPED, store_size="source", **kw)
    assert source.written == 1 and not source.up_to_date


def test_pil_resize_is_exactly_pil():
    frame = pattern_frames(1, 97, 131)[0]
    got = pil_bilinear_resize(torch.from_numpy(frame).permute(2, 0, 1)[None], 160)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(got, pil_reference(frame, 160))
    same = torch.zeros(2, 3, 160, 160, dtype=torch.uint8)
    assert pil_bilinear_resize(same, 160) is same
    with pytest.raises(ValueError, match="uint8"):
        pil_bilinear_resize(same.float(), 160)


def test_store_frames_geometry_and_errors():
    frame = pattern_frames(1, 224, 224)[0]
    (patch,) = store_frames([frame], FaceMode.FIXED_UPPER_CENTRE, "source")
    assert patch.shape == (160, 160, 3) and np.array_equal(patch, frame[0:160, 32:192])
    mixed = store_frames([frame, cv2.resize(frame, (100, 100))], FaceMode.PRECROPPED, "source")
    assert [f.shape for f in mixed] == [(224, 224, 3)] * 2
    assert check_store_size(None, FaceMode.MTCNN) is None and check_store_size("256", FaceMode.MTCNN) == 256
    with pytest.raises(ValueError, match="store_size an integer"):
        check_store_size("source", FaceMode.MTCNN)
    for bad in ("big", 8, 1.5, True):
        with pytest.raises(ValueError, match="'source' or an integer"):
            check_store_size(bad, FaceMode.PRECROPPED)


def test_unknown_load_resize_is_refused(tmp_path):
    records = write_clips(tmp_path / "raw", [pattern_frames(2)])
    ingest(records, tmp_path / "raw", tmp_path / "out", FaceMode.PRECROPPED, dataset="toy", class_names=["a"],
           progress=False)
    index = tmp_path / "out" / "index.parquet"
    import pyarrow.parquet as pq

    table = read_index(index)
    meta = dict(table.schema.metadata)
    meta[b"maedfer.load_resize"] = b"lanczos"
    pq.write_table(table.replace_schema_metadata(meta), index)
    with pytest.raises(SelectionError, match="load_resize"):
        ShardClipDataset(index)


def test_paper_profile_opts_in_and_demo_does_not():
    paper = load_profile(ROOT / "params.yaml").params.datasets
    demo = load_profile(ROOT / "params/demo.yaml").params.datasets
    for name in ("dfew", "ferv39k", "mafw"):
        assert (paper[name].ingest.store_size, paper[name].ingest.jpeg_quality) == ("source", 95)
    for spec in demo.values():
        assert (spec.ingest.store_size, spec.ingest.jpeg_quality, spec.ingest.size) == (None, 90, 160)


def test_ingest_flag():
    from pipeline.ingest import build_parser

    args = build_parser().parse_args(["--dataset", "dfew", "--root", "x", "--out", "y", "--store-size", "source"])
    assert args.store_size == "source"
    args = build_parser().parse_args(["--dataset", "dfew", "--root", "x", "--out", "y", "--store-size", "224"])
    assert args.store_size == 224
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--dataset", "dfew", "--root", "x", "--out", "y", "--store-size", "big"])
