"""SIGTERM / SIGINT during an ingest: the open shard is closed at a clip boundary and a re-run resumes from it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from maedfer.data.shards import list_shards, read_index, read_shard_clips
from tests.test_video_io import colour_frames, write_video

REPO = Path(__file__).resolve().parents[1]
NUM_CLIPS = 8

# The CLI with every clip's decoding slowed down (so the signal lands mid-run) and announced on stdout.
SLOW_CLI = """
import sys, time
import maedfer.data.ingest_work as work
from pipeline.ingest import main
prepare = work.prepare_clip
def slow(task):
    time.sleep(0.4)
    result = prepare(task)
    print("prepared", task.clip_id, flush=True)
    return result
work.prepare_clip = slow
sys.exit(main(sys.argv[1:]))
"""


def vox_layout(root: Path) -> None:
    """NUM_CLIPS demo-like 224 x 224 VoxCeleb2 clips (two speakers)."""
    for i in range(NUM_CLIPS):
        frames = [np.roll(f, 5 * i, axis=1) for f in colour_frames(6, 224, 224)]
        write_video(root / "dev" / "mp4" / f"id0000{i % 2}" / "abcdefghijk" / f"{i:05d}.mp4", frames, fps=25)


def cli(root: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", SLOW_CLI, "--dataset", "voxceleb2", "--root", str(root), "--out", str(out),
            "--no-progress"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_closes_the_shard_and_a_rerun_resumes(tmp_path, signum):
    root = tmp_path / "vox"
    vox_layout(root)
    out = tmp_path / "out"
    proc = subprocess.Popen(cli(root, out), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    prepared = 0
    for line in proc.stdout:
        prepared += line.startswith("prepared ")
        if prepared == 3:
            proc.send_signal(signum)
            break
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    stopped = [line for line in stderr.splitlines() if "stopped by" in line]
    assert len(stopped) == 1 and signal.Signals(signum).name in stopped[0]
    assert "run the same command again" in stopped[0]
    assert not (out / "index.parquet").exists()
    shards = list_shards(out)
    assert len(shards) == 1  # the default shard bound: every clip was in the one open shard, now closed
    kept = [clip.clip_id for clip in read_shard_clips(shards[0])[1]]
    assert 3 <= len(kept) < NUM_CLIPS

    resumed = subprocess.run(cli(root, out), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    redone = {line.split()[1] for line in resumed.stdout.splitlines() if line.startswith("prepared ")}
    assert not redone & set(kept) and len(redone) == NUM_CLIPS - len(kept)  # done clips are not decoded again
    report = json.loads((out / "report.json").read_text())
    assert report["reused"] == len(kept) and report["written"] == NUM_CLIPS - len(kept)

    full = tmp_path / "full"
    assert subprocess.run(cli(root, full), cwd=REPO, capture_output=True, timeout=120).returncode == 0
    a, b = read_index(out / "index.parquet"), read_index(full / "index.parquet")
    same = [c for c in a.column_names if c not in ("shard", "row")]  # where a clip lies differs, nothing else
    assert a.select(same).equals(b.select(same)) and a.num_rows == NUM_CLIPS
