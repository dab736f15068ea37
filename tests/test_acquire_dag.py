"""acquire_<dataset> in the DAG: the plan, then (slow) from an empty data folder through Snakemake: RAVDESS's
per-actor zips served from 127.0.0.1 are downloaded, verified, extracted, ingested and fine-tuned; a second run
does nothing; a changed checksum is a one-line error naming the file. And the user's own dataset (CSV and
class-folder forms) through the same commands."""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from maedfer.workflow.dvc import render
from maedfer.workflow.plan import build_plan
from tests.acquire_server import Served, serve, zip_bytes

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
       "MAEDFER_CACHE": os.environ.get("MAEDFER_CACHE", str(Path.home() / ".cache" / "maedfer"))}
DFEW_CLASSES = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")  # DFEW labels 1..7


def _tiny(tmp_path: Path, datasets: dict, tables: dict) -> dict:
    """A tiny profile over ``datasets`` (fine-tuning from scratch, 64 px, 2 epochs), no MLflow."""
    data = copy.deepcopy(yaml.safe_load((ROOT / "params/demo.yaml").read_text()))
    data.pop("demo_data")
    data.pop("figures")
    data["profile"] = "tiny_acquire"
    data["paths"] = {k: str(tmp_path / k) for k in ("shards", "runs", "results")}
    data["mlflow"] = {"experiment": "tiny-acquire", "tracking": False}
    data["datasets"] = {"voxceleb2": {"adapter": "voxceleb2", "root": str(tmp_path / "unused")}, **datasets}
    ft = data["finetune"]["defaults"]
    ft.update(epochs=2, warmup_epochs=0, batch_size=4, num_workers=0, max_steps_per_epoch=3)
    ft["arch_kwargs"].update(img_size=64, region_size=[2, 2, 2])
    data["pretrain"]["defaults"]["arch_kwargs"].update(img_size=64, region_size=[2, 2, 2])
    data["finetune"]["experiments"] = {"scratch": {"pretraining": None}}
    data["tables"] = tables
    return data


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_dataset_with_a_source_gets_an_acquire_job_before_ingest_and_the_demo_none(tmp_path):
    spec = {"adapter": "ravdess", "root": str(tmp_path / "raw/ravdess"), "folds": [1, 2, 3, 4, 5, 6],
            "source": {"catalogue": "ravdess"}}
    table8 = {"table8": {"datasets": {"ravdess": [1]}, "rows": {"mae_dfer": "scratch"}}}
    path = _write(tmp_path / "p.yaml", _tiny(tmp_path, {"ravdess": spec}, table8))
    plan = build_plan(path)
    acquire, ingest = plan.jobs["acquire_ravdess"], plan.jobs["ingest_ravdess"]
    assert acquire.outputs == [f"{tmp_path}/raw/ravdess/.acquired.json"] and ingest.inputs[0] == acquire.outputs[0]
    assert "pipeline/acquire.py" not in acquire.inputs  # editing the stage's code does not re-fetch the data
    assert [j.name for j in plan.closure(plan.targets["reproduce_table8"])][:2] == ["acquire_ravdess", "ingest_ravdess"]
    text = render(plan, "dvc.yaml")
    assert "pipeline.acquire --params" in text and "persist: true" in text
    assert not any(j.stage == "acquire" for j in build_plan(ROOT / "params/demo.yaml").jobs.values())
    assert all(f"acquire_{d}" in build_plan(ROOT / "params.yaml").jobs for d in ("ravdess", "cremad", "enterface"))


# ------------------------------------------------------------------------------------- slow: through Snakemake
def _demo_clips(tmp_path: Path) -> tuple[Path, dict[str, tuple[str, str]]]:
    """The demo's tiny DFEW-style clips: their folder and clip id -> (class name, subject)."""
    out = tmp_path / "demo"
    r = subprocess.run([str(BIN / "maedfer"), "demo-data", "--tiny", "--pretrain-clips", "0", "--out", str(out)],
                       capture_output=True, text=True, env=ENV, timeout=300)  # DFEW-style clips only
    assert r.returncode == 0, r.stderr[-2000:]
    dfew = out / "dfew"
    subjects = {row["video_name"]: row["subject"] for row in csv.DictReader(open(dfew / "subjects.csv"))}
    labels = {}
    for f in (dfew / "EmoLabel_DataSplit" / "test(single-labeled)").glob("set_*.csv"):
        labels.update({row["video_name"]: DFEW_CLASSES[int(row["label"]) - 1] for row in csv.DictReader(open(f))})
    return dfew / "Clip" / "clip_224x224", {c: (labels[c], subjects[c]) for c in sorted(labels)}


def _mp4(frames_dir: Path) -> bytes:
    import cv2

    files = sorted(frames_dir.iterdir())
    first = cv2.imread(str(files[0]))
    path = frames_dir.parent.parent / f"{frames_dir.name}.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (first.shape[1], first.shape[0]))
    for f in files:
        writer.write(cv2.imread(str(f)))
    writer.release()
    return path.read_bytes()


def _snakemake(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "snakemake"), *args], capture_output=True, text=True, cwd=cwd, env=ENV,
                          timeout=900)


@pytest.mark.slow
def test_ravdess_zips_from_127_0_0_1_to_a_table_with_no_manual_step_then_nothing_then_a_checksum_error(tmp_path):
    clips, meta = _demo_clips(tmp_path)
    subjects = sorted({s for _, s in meta.values()})
    actor = dict(zip(subjects, [1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], strict=False))  # 1-4: fold 1's test
    members: dict[int, dict[str, bytes]] = {}
    for n, (clip, (label, subject)) in enumerate(meta.items()):
        a = actor[subject]
        name = f"Actor_{a:02d}/02-01-{DFEW_CLASSES.index(label) + 1:02d}-01-01-{n % 99 + 1:02d}-{a:02d}.mp4"
        members.setdefault(a, {})[name] = _mp4(clips / clip)
    zips = {f"Video_Speech_Actor_{a:02d}.zip": zip_bytes(m) for a, m in sorted(members.items())}
    with serve(Served(files=zips)) as server:
        source = {"catalogue": "ravdess", "mirror": server.base + "/", "only": sorted(zips),
                  "checksums": {n: "md5:" + hashlib.md5(b).hexdigest() for n, b in zips.items()}}
        root = tmp_path / "data" / "raw" / "ravdess"
        spec = {"adapter": "ravdess", "root": str(root), "folds": [1, 2, 3, 4, 5, 6],
                "ingest": {"size": 64, "workers": 0}, "source": source}
        params = _write(tmp_path / "p.yaml", _tiny(tmp_path, {"ravdess": spec}, {
            "table8": {"datasets": {"ravdess": [1]}, "rows": {"mae_dfer": "scratch"}}}))
        cfg = ["--config", f"params={params}", f"logs={tmp_path}/logs"]
        r = _snakemake("--cores", "2", "reproduce_table8", *cfg)
        assert r.returncode == 0, r.stderr[-4000:]
        assert "MAE-DFER" in (tmp_path / "results/table8/table8.md").read_text()
        assert (root / "Actor_01").is_dir() and not (root / ".downloads").exists()
        marker = (root / ".acquired.json").read_bytes()
        assert len(json.loads(marker)["items"]) == len(zips)
        requests = len(server.requests)

        again = _snakemake("--cores", "2", "reproduce_table8", *cfg)
        assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
        assert len(server.requests) == requests and (root / ".acquired.json").read_bytes() == marker

        data = yaml.safe_load(params.read_text())
        data["datasets"]["ravdess"]["source"]["checksums"]["Video_Speech_Actor_01.zip"] = "md5:" + "1" * 32
        _write(params, data)
        bad = _snakemake("--cores", "2", "reproduce_table8", *cfg)
        assert bad.returncode != 0
        log = Path(f"{tmp_path}/logs/{root}/acquire.log").read_text().strip().splitlines()
        assert log[-1].startswith("acquire: error: Video_Speech_Actor_01.zip: md5 "), log[-3:]


@pytest.mark.slow
def test_own_dataset_as_csv_and_as_class_folders_through_ingest_finetune_and_aggregate(tmp_path):
    clips, meta = _demo_clips(tmp_path)
    csv_root = tmp_path / "mine_csv"
    (csv_root / "clips").mkdir(parents=True)
    with open(csv_root / "labels.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["path", "label", "subject"])
        for clip, (label, subject) in meta.items():
            os.symlink(clips / clip, csv_root / "clips" / clip)
            out.writerow([f"clips/{clip}", label, subject])
    folders = tmp_path / "mine_folders_src"
    for clip, (label, _) in meta.items():
        (folders / label).mkdir(parents=True, exist_ok=True)
        os.symlink(clips / clip, folders / label / clip)
    datasets = {
        "mine_csv": {"adapter": "custom", "root": str(csv_root), "folds": [1, 2, 3, 4, 5],
                     "ingest": {"size": 64, "workers": 0}},
        "mine_folders": {"adapter": "custom", "root": str(tmp_path / "data/raw/mine_folders"),
                         "folds": [1, 2, 3, 4, 5], "ingest": {"size": 64, "workers": 0},
                         "source": {"folder": str(folders)}},
    }
    params = _write(tmp_path / "p.yaml", _tiny(tmp_path, datasets, {
        "own": {"datasets": {"mine_csv": [1], "mine_folders": [1]}, "rows": {"scratch": "scratch"}}}))
    target = str(tmp_path / "results/own/own.md")
    r = _snakemake("--cores", "2", target, "--config", f"params={params}", f"logs={tmp_path}/logs")
    assert r.returncode == 0, r.stderr[-4000:]
    table = Path(target).read_text()
    assert "mine_csv" in table and "mine_folders" in table
    folds = list(csv.DictReader(open(csv_root / "folds.csv")))
    by_subject: dict[str, set[str]] = {}
    for row in folds:
        by_subject.setdefault(row["subject"], set()).add(row["fold"])
    assert len(folds) == len(meta) and all(len(f) == 1 for f in by_subject.values())  # subject-independent
    import pyarrow.parquet as pq

    index = pq.read_table(tmp_path / "shards/mine_csv/index.parquet")
    names = json.loads(index.schema.metadata[b"maedfer.class_names"])
    assert names == sorted({label for label, _ in meta.values()})  # class names from the data
    from maedfer.predict.loading import load_for_prediction

    loaded = load_for_prediction(tmp_path / "runs/finetune/scratch/mine_csv/fold1/model.pt", device="cpu")
    assert loaded.class_names == names  # what `maedfer predict` shows


@pytest.mark.slow
def test_gated_datasets_without_files_or_credentials_stop_the_run_before_any_job(tmp_path):
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, spec in data["datasets"].items():
        spec["root"] = str(tmp_path / "raw" / name)
        if "source" in spec:
            spec["source"]["inbox"] = str(tmp_path / "archives" / name)
    data["paths"] = {k: str(tmp_path / k) for k in ("shards", "runs", "results")}
    params = _write(tmp_path / "p.yaml", data)
    env = {k: v for k, v in ENV.items() if not k.startswith("MAEDFER_VOXCELEB2_")}
    r = subprocess.run([str(BIN / "snakemake"), "--cores", "1", "reproduce_table5", "--config", f"params={params}"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode != 0
    assert "DFEW for 'dfew' is not there yet: request access at https://dfew-dataset.github.io" in r.stderr
    assert "set MAEDFER_VOXCELEB2_USER and MAEDFER_VOXCELEB2_PASSWORD" in r.stderr, r.stderr[-3000:]
    assert "ferv39k" not in r.stderr and not (tmp_path / "raw").exists()  # nothing started


@pytest.mark.slow
def test_dvc_runs_the_acquire_stage_and_a_forced_rerun_of_a_satisfied_source_changes_nothing(tmp_path):
    archives = tmp_path / "owners"
    archives.mkdir()
    for a in (1, 2):
        (archives / f"Video_Speech_Actor_{a:02d}.zip").write_bytes(
            zip_bytes({f"Actor_{a:02d}/02-01-0{e}-01-01-01-{a:02d}.mp4": bytes([a, e]) for e in (1, 2)}))
    repo = tmp_path / "repo"
    repo.mkdir()
    spec = {"adapter": "ravdess", "root": "data/raw/ravdess", "folds": [1, 2, 3, 4, 5, 6],
            "source": {"files": sorted(str(p) for p in archives.iterdir())}}
    table8 = {"table8": {"datasets": {"ravdess": [1]}, "rows": {"mae_dfer": "scratch"}}}
    _write(repo / "params.yaml", _tiny(tmp_path, {"ravdess": spec}, table8))
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        (repo / "dvc.yaml").write_text(render(build_plan("params.yaml"), "dvc.yaml"))
    finally:
        os.chdir(cwd)
    env = {**ENV, "PYTHONPATH": str(ROOT)}

    def dvc(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "dvc"), *args], capture_output=True, text=True, cwd=repo, env=env,
                              timeout=300)

    assert dvc("init", "--no-scm").returncode == 0
    first = dvc("repro", "--single-item", "acquire@ravdess")
    assert first.returncode == 0, first.stderr[-3000:] + first.stdout[-3000:]
    marker = repo / "data/raw/ravdess/.acquired.json"
    before = (marker.read_bytes(), marker.stat().st_mtime_ns)
    assert (repo / "data/raw/ravdess/Actor_02/02-01-02-01-01-01-02.mp4").is_file()
    again = dvc("repro", "--single-item", "acquire@ravdess")
    assert again.returncode == 0 and "didn't change, skipping" in again.stdout, again.stdout
    forced = dvc("repro", "--single-item", "--force", "acquire@ravdess")  # runs the command: nothing to do
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert (marker.read_bytes(), marker.stat().st_mtime_ns) == before  # persisted and not rewritten
    status = dvc("status", "acquire@ravdess")
    assert status.returncode == 0 and "up to date" in status.stdout.lower(), status.stdout
