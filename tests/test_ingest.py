"""The ingest stage: skips and reports, resume after an interruption, idempotent re-runs, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from maedfer.data.ingest import ingest
from maedfer.data.records import INDEX_COLUMNS, ClipRecord, FaceMode, SourceKind
from maedfer.data.shards import index_metadata, list_shards, read_clip_frames, read_index, verify_index
from tests.test_faces import face_clip
from tests.test_video_io import colour_frames, write_flv, write_frame_folder, write_video

REPO = Path(__file__).resolve().parents[1]


def make_dataset(root: Path, n_videos: int = 6) -> list[ClipRecord]:
    """Small 224 x 224 videos (VoxCeleb2-like), a broken video, a frame folder and a bad frame folder."""
    records = []
    for i in range(n_videos):
        frames = [np.roll(f, 7 * i, axis=1) for f in colour_frames(6 + i % 3, 224, 224)]
        write_video(root / "videos" / f"v{i}.mp4", frames, fps=25)
        records.append(
            ClipRecord(f"v{i}", f"videos/v{i}.mp4", SourceKind.VIDEO, label=i % 2, label_name=f"c{i % 2}",
                       subject=f"id{i // 2}", train_folds=(2,), test_folds=(1,))
        )  # fmt: skip
    (root / "videos" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(3000))
    records.insert(2, ClipRecord("broken", "videos/broken.mp4", SourceKind.VIDEO, label=0, label_name="c0"))
    write_frame_folder(root / "frames" / "f0", colour_frames(5, 224, 224), ext=".jpg")
    records.append(ClipRecord("f0", "frames/f0", SourceKind.FRAMES, label=1, label_name="c1", test_folds=(2,)))
    bad = write_frame_folder(root / "frames" / "f1", colour_frames(4, 224, 224), ext=".jpg")
    (bad / "frame_3.jpg").write_bytes(b"truncated")
    records.append(ClipRecord("f1", "frames/f1", SourceKind.FRAMES, label=1, label_name="c1"))
    records.append(ClipRecord("gone", "videos/gone.mp4", SourceKind.VIDEO))
    return records


def run(records, root, out, **kw):
    kw.setdefault("face_mode", FaceMode.FIXED_UPPER_CENTRE)
    kw.setdefault("dataset", "toy")
    kw.setdefault("class_names", ["c0", "c1"])
    kw.setdefault("progress", False)
    return ingest(records, root, out, **kw)


def snapshot(out: Path) -> dict[str, int]:
    """mtime (ns) of every file under out."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "root"
    return root, make_dataset(root)


def test_ingest_writes_index_shards_and_report(dataset, tmp_path):
    root, records = dataset
    out = tmp_path / "out"
    report = run(records, root, out, adapter_skipped=[("odd.txt", "not a clip")])
    assert report.seen == 10 and report.written == 7 and report.stored == 7 and report.reused == 0
    assert report.skipped == {"unreadable_video": ["broken"], "unreadable_frame": ["f1"], "missing_source": ["gone"]}
    assert "broken.mp4" in report.skipped_detail["broken"] and "frame_3.jpg" in report.skipped_detail["f1"]

    table = read_index(out / "index.parquet")
    assert tuple(table.column_names) == INDEX_COLUMNS
    assert table.column("clip_id").to_pylist() == ["v0", "v1", "v2", "v3", "v4", "v5", "f0"]  # record order
    assert table.column("num_frames").to_pylist() == [6, 7, 8, 6, 7, 8, 5]
    assert set(table.column("height").to_pylist()) == {160} and set(table.column("width").to_pylist()) == {160}
    assert table.column("fps").to_pylist() == [25.0] * 6 + [0.0]
    assert table.column("test_folds").to_pylist()[0] == [1] and table.column("subject").to_pylist()[-1] is None
    meta = index_metadata(table)
    assert meta["dataset"] == "toy" and json.loads(meta["class_names"]) == ["c0", "c1"] and meta["num_folds"] == "2"
    assert verify_index(out / "index.parquet") == 7

    # Stored frames are the fixed upper-centre patch of the source frames.
    row = table.slice(1, 1).to_pylist()[0]
    (jpeg,) = read_clip_frames(out / row["shard"], row["row"], [3], expected_checksum=row["checksum"])
    frame = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    source = np.roll(colour_frames(7, 224, 224)[3], 7, axis=1)[0:160, 32:192]
    assert frame.shape == (160, 160, 3) and np.abs(frame.astype(int) - source).mean() < 6

    saved = json.loads((out / "report.json").read_text())
    assert saved["seen"] == 10 and saved["written"] == 7 and saved["frames_written"] == 47
    assert saved["skipped_counts"] == {"missing_source": 1, "unreadable_frame": 1, "unreadable_video": 1}
    assert saved["adapter_skipped"] == [["odd.txt", "not a clip"]] and saved["class_names"] == ["c0", "c1"]
    assert saved["bytes_on_disk"] > 0 and saved["frames_per_second"] > 0 and saved["seconds"] > 0


def test_interrupted_run_resumes_and_rerun_rewrites_nothing(dataset, tmp_path, monkeypatch):
    root, records = dataset
    out = tmp_path / "out"

    def interrupted():
        for i, record in enumerate(records):
            if i == 4:
                raise KeyboardInterrupt  # as if the user stopped the run
            yield record

    with pytest.raises(KeyboardInterrupt):
        run(interrupted(), root, out, shard_bytes=20_000)
    assert not (out / "index.parquet").exists()
    first = list_shards(out)
    assert first  # finished shards are kept
    kept = {p.name: p.stat().st_mtime_ns for p in first}

    resumed = run(records, root, out, shard_bytes=20_000)
    assert resumed.reused == 3 and resumed.written == 4 and resumed.stored == 7  # v0, v1, v2 reused
    assert {p.name: p.stat().st_mtime_ns for p in list_shards(out) if p.name in kept} == kept
    assert len(list_shards(out)) > 2  # the small bound split the clips over several shards
    assert verify_index(out / "index.parquet") == 7
    full = tmp_path / "full"
    run(records, root, full, shard_bytes=20_000)
    checksums = read_index(out / "index.parquet").column("checksum")
    assert checksums.equals(read_index(full / "index.parquet").column("checksum"))  # same bytes as one full run

    before = snapshot(out)
    with monkeypatch.context() as m:  # nothing may be decoded: stored clips and known skips are reused
        m.setattr("maedfer.data.ingest_work.prepare_clip", lambda task: pytest.fail(f"decoded {task.clip_id} again"))
        again = run(records, root, out, shard_bytes=20_000)
    assert again.up_to_date and again.written == 0 and again.reused == 7
    assert again.skipped == resumed.skipped  # remembered, not decoded again
    assert snapshot(out) == before  # nothing rewritten: shards, index, state, report

    # New labels only: the index changes, the shards do not.
    relabelled = [r if r.clip_id != "v0" else ClipRecord(**{**r.__dict__, "label": 1}) for r in records]
    third = run(relabelled, root, out, shard_bytes=20_000)
    assert third.written == 0 and not third.up_to_date
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k.startswith("shards/")} == {
        k: v for k, v in before.items() if k.startswith("shards/")
    }
    assert read_index(out / "index.parquet").column("label").to_pylist()[0] == 1

    # A changed source is re-ingested; a changed setting rewrites everything.
    write_video(root / "videos" / "v1.mp4", colour_frames(9, 224, 224), fps=25)
    os.utime(root / "videos" / "v1.mp4", ns=(1, 1))
    assert run(relabelled, root, out, shard_bytes=20_000).written == 1
    assert run(relabelled, root, out, shard_bytes=20_000, size=128).written == 7


def test_parallel_decode_matches_serial(dataset, tmp_path):
    root, records = dataset
    serial = run(records, root, tmp_path / "a")
    parallel = run(records, root, tmp_path / "b", workers=2)
    assert parallel.skipped == serial.skipped and parallel.written == serial.written
    a, b = read_index(tmp_path / "a" / "index.parquet"), read_index(tmp_path / "b" / "index.parquet")
    assert a.equals(b)


@pytest.mark.slow
def test_mtcnn_ingest_skips_a_clip_without_face(tmp_path):
    root = tmp_path / "root"
    frames, _ = face_clip(8, blank=(3,))
    write_video(root / "face.avi", frames, fps=30)
    rng = np.random.default_rng(1)
    write_video(root / "noise.avi", [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(5)], fps=30)
    records = [ClipRecord(n, f"{n}.avi", SourceKind.VIDEO) for n in ("face", "noise")]
    report = run(records, root, tmp_path / "out", face_mode=FaceMode.MTCNN, device="cpu")
    assert report.written == 1 and report.skipped == {"no_face": ["noise"]}
    table = read_index(tmp_path / "out" / "index.parquet")
    assert table.column("num_frames").to_pylist() == [8] and table.column("fps").to_pylist() == [30.0]


@pytest.mark.slow
def test_cli_on_cremad_layout(tmp_path):
    root = tmp_path / "CREMA-D"
    frames, _ = face_clip(6, shift=2)
    small = [cv2.resize(f, (320, 240)) for f in frames]
    write_flv(root / "VideoFlash" / "1001_DFA_ANG_XX.flv", small)
    write_flv(root / "VideoFlash" / "1020_IEO_HAP_HI.flv", small[::-1])
    (root / "VideoFlash" / "1030_IEO_XYZ_HI.flv").write_bytes(b"")  # unknown emotion: left out by the adapter
    out = tmp_path / "shards" / "cremad"
    cmd = [sys.executable, "-m", "pipeline.ingest", "--dataset", "cremad", "--root", str(root)]
    done = subprocess.run([*cmd, "--out", str(out), "--device", "cpu", "--verify"], capture_output=True, text=True,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "2 clips" in done.stdout and "verified 2 clips" in done.stdout
    table = read_index(out / "index.parquet")
    assert table.column("label").to_pylist() == [0, 3] and table.column("test_folds").to_pylist() == [[1], [2]]
    meta = index_metadata(table)
    assert meta["dataset"] == "cremad" and meta["num_folds"] == "5" and len(json.loads(meta["class_names"])) == 6
    report = json.loads((out / "report.json").read_text())
    assert len(report["adapter_skipped"]) == 1 and "1030_IEO_XYZ_HI" in json.dumps(report["adapter_skipped"])

    again = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, cwd=REPO)
    assert again.returncode == 0 and "up to date" in again.stdout


def test_cli_errors_are_one_line(tmp_path):
    script = "-m", "pipeline.ingest"
    missing = tmp_path / "nowhere"
    done = subprocess.run(
        [sys.executable, *script, "--dataset", "cremad", "--root", str(missing), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and str(missing) in done.stderr
    done = subprocess.run(
        [sys.executable, *script, "--dataset", "nosuch", "--root", str(tmp_path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 2 and "unknown dataset" in done.stderr and "Traceback" not in done.stderr


def test_explicit_flag_equal_to_its_default_wins_over_the_params_file(tmp_path):
    """--size 160 typed on the command line beats the params file's size (the flag's default is also 160)."""
    import yaml

    from pipeline.ingest import build_parser, resolve_settings

    data = yaml.safe_load((REPO / "params" / "demo.yaml").read_text())
    data["datasets"]["dfew"]["ingest"] = {"size": 112, "workers": 2, "margin": 0.5}
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump(data))
    base = ["--params", str(params), "--dataset", "dfew", "--root", str(tmp_path), "--out", str(tmp_path / "o")]
    adapter, settings = resolve_settings(build_parser().parse_args(base))
    assert adapter == "dfew" and (settings.size, settings.workers, settings.margin) == (112, 2, 0.5)
    _, settings = resolve_settings(build_parser().parse_args([*base, "--size", "160", "--workers", "0"]))
    assert (settings.size, settings.workers, settings.margin, settings.jpeg_quality) == (160, 0, 0.5, 90)
    _, settings = resolve_settings(build_parser().parse_args(base[2:] + ["--size", "96"]))  # no params file
    assert (settings.size, settings.workers, settings.shard_mb) == (96, 0, 256.0)
