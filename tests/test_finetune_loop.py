"""Fine-tuning one fold: every output is written, from scratch or from a pre-trained encoder."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from maedfer.models import create_model, load_model, save_model
from maedfer.settings import FinetuneConfig, PretrainConfig
from maedfer.train.finetune_loop import finetune, load_pretrained_encoder
from maedfer.train.pretrain_loop import pretrain
from tests.test_datasets import write_toy_index

GEOM = dict(img_size=64, num_frames=8, region_size=(2, 2, 4))


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return write_toy_index(tmp_path_factory.mktemp("finetune_toy"))


def _cfg(**kw) -> FinetuneConfig:
    base = dict(arch="lgi_former_test", arch_kwargs=GEOM, epochs=2, warmup_epochs=1, batch_size=2, num_workers=0,
                stride=2, base_lr=0.5)
    return FinetuneConfig(**{**base, **kw})


def test_finetune_writes_every_output(index, tmp_path):
    out = tmp_path / "fold1"
    summary = finetune(_cfg(), index, fold=1, out_dir=out)
    assert len(summary["history"]) == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"uar", "war", "per_class_recall", "confusion_matrix", "weighted_f1"}
    assert metrics["num_samples"] == 4  # clips 0, 2, 4, 6 test in fold 1
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["clip_id"] for r in rows] == ["clip000", "clip002", "clip004", "clip006"]
    assert all(abs(sum(float(r[f"p_{c}"]) for c in "abc") - 1) < 1e-4 for r in rows)
    assert (out / "confusion.png").stat().st_size > 1000
    model = load_model(out / "model.pt")
    assert model.class_names == ["a", "b", "c"]
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and history == summary["history"]
    assert set(history[0]) == {"epoch", "train/loss", "val/uar", "val/war", "train/clips_per_s"}
    # A re-run into the folder of a finished run (Snakemake / DVC after its inputs, e.g. the pre-trained
    # encoder, or the code changed) trains again from the start rather than resuming the old run's end state;
    # with the same inputs it reproduces the run exactly. The old run's checkpoints are kept aside.
    mtime = (out / "history.json").stat().st_mtime_ns
    again = finetune(_cfg(), index, fold=1, out_dir=out)
    assert [h["train/loss"] for h in again["history"]] == [h["train/loss"] for h in history]
    assert again["metrics"] == metrics and (out / "history.json").stat().st_mtime_ns != mtime
    assert (out / "checkpoints.previous" / "finished.json").is_file()


def test_finetune_restarts_when_a_setting_changed(index, tmp_path, caplog):
    out = tmp_path / "fold1"
    finetune(_cfg(epochs=1), index, fold=1, out_dir=out)
    changed = finetune(_cfg(epochs=1, base_lr=0.25), index, fold=1, out_dir=out)
    assert "settings differ (base_lr)" in caplog.text and len(changed["history"]) == 1
    fresh = finetune(_cfg(epochs=1, base_lr=0.25), index, fold=1, out_dir=tmp_path / "fresh")
    assert changed["history"][0]["train/loss"] == fresh["history"][0]["train/loss"]


def test_finetune_tests_best_validation_epoch(index, tmp_path):
    out = tmp_path / "best"
    summary = finetune(_cfg(epochs=3, test_best=True), index, fold=1, out_dir=out)
    val = [h["val/uar"] for h in summary["history"]]
    best = json.loads((out / "metrics_best.json").read_text())
    assert best["best_epoch"] == 1 + val.index(max(val))  # first epoch reaching the best validation UAR
    assert best["num_samples"] == summary["metrics"]["num_samples"]
    assert (out / "predictions_best.csv").is_file() and (out / "confusion_best.png").is_file()
    if best["best_epoch"] == 3:  # the last epoch is the best: both tests score the same weights
        assert best["uar"] == summary["metrics"]["uar"]


def test_eval_every_and_the_clip_cache_leave_the_training_unchanged(index, tmp_path):
    from maedfer.results.dvc_files import write_curves_csv
    from maedfer.viz.curves import plot_curves, read_history

    every = finetune(_cfg(epochs=3), index, fold=1, out_dir=tmp_path / "every")
    sparse = finetune(_cfg(epochs=3, eval_every=2, cache_mb=16), index, fold=1, out_dir=tmp_path / "sparse")
    assert [h["train/loss"] for h in sparse["history"]] == [h["train/loss"] for h in every["history"]]
    assert sparse["metrics"]["uar"] == every["metrics"]["uar"]
    a, b = (torch.load(tmp_path / d / "model.pt", weights_only=False)["state_dict"] for d in ("every", "sparse"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert ["val/uar" in h for h in sparse["history"]] == [False, True, True]  # epoch 2 and the last one
    assert sparse["history"][1]["val/uar"] == every["history"][1]["val/uar"]
    kind, records = read_history(tmp_path / "sparse")  # the curves take a history with gaps
    assert kind == "finetune" and len(records) == 3
    assert plot_curves([("sparse", kind, records)], tmp_path / "curves.png").stat().st_size > 1000
    rows = write_curves_csv(tmp_path / "curves.csv", records).read_text().splitlines()
    assert rows[1].endswith(",,") and not rows[2].endswith(",,")


def test_finetune_from_pretrained_encoder(index, tmp_path):
    pre = PretrainConfig(arch="pretrain_lgi_former_test", arch_kwargs=dict(**GEOM, mask_ratio=0.75), epochs=1,
                         warmup_epochs=0, batch_size=2, num_workers=0, stride=2)
    pretrain(pre, index, tmp_path / "pre")
    pretrained = load_model(tmp_path / "pre" / "model.pt")
    summary = finetune(_cfg(init=str(tmp_path / "pre" / "model.pt"), epochs=1), index, fold=2,
                       out_dir=tmp_path / "fold2")
    assert summary["metrics"]["num_samples"] == 4
    fresh = load_model(tmp_path / "fold2" / "model.pt")
    load_pretrained_encoder(fresh, tmp_path / "pre" / "model.pt")
    torch.testing.assert_close(fresh.encoder.region_tokens, pretrained.encoder.region_tokens)
    save_model(tmp_path / "vit.pt", create_model("vit_test", img_size=64, num_frames=8))
    with pytest.raises(ValueError, match="does not match"):
        load_pretrained_encoder(fresh, tmp_path / "vit.pt")


@pytest.mark.slow
def test_finetune_and_evaluate_stage_clis(index, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    repo = Path(__file__).resolve().parents[1]
    common = ["--arch", "lgi_former_test", "--arch-kwargs", json.dumps({**GEOM, "region_size": [2, 2, 4]}),
              "--epochs", "1", "--warmup-epochs", "0", "--batch-size", "2", "--num-workers", "0", "--stride", "2"]
    for fold in (1, 2):
        cmd = [sys.executable, "-m", "pipeline.finetune", "--dataset", "toy", "--index", str(index),
               "--fold", str(fold), "--out", str(tmp_path / "runs" / f"fold{fold}"), *common]
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout.strip().splitlines()[-1])["fold"] == fold
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("maedfer-finetune-toy")
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(children) == 2 and len({r.data.tags["mlflow.parentRunId"] for r in children}) == 1
    assert {r.data.tags["fold"] for r in children} == {"1", "2"}
    assert all("test/uar" in r.data.metrics for r in children)
    versions = client.search_model_versions(f"name = 'maedfer-toy-{tmp_path.name}'")  # each fold registered
    assert sorted((str(v.version), v.tags["fold"]) for v in versions) == [("1", "1"), ("2", "2")]
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # opens in the model-training view
    ev = subprocess.run([sys.executable, "-m", "pipeline.evaluate", "--checkpoint",
                         str(tmp_path / "runs" / "fold1" / "model.pt"), "--index", str(index), "--fold", "1",
                         "--out", str(tmp_path / "eval"), "--stride", "2", "--num-workers", "0"],
                        cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert ev.returncode == 0, ev.stderr
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == json.loads(
        (tmp_path / "runs" / "fold1" / "metrics.json").read_text())


@pytest.mark.slow
def test_two_process_ddp_finetune(index, tmp_path):
    """torchrun, 2 gloo processes on CPU: trains, and the test metrics cover every clip exactly once."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "pipeline.finetune", "--dataset", "toy",
           "--index", str(index), "--fold", "1", "--out", str(tmp_path / "ddp"), "--no-tracking",
           "--arch", "lgi_former_test", "--arch-kwargs", json.dumps({**GEOM, "region_size": [2, 2, 4]}),
           "--epochs", "1", "--warmup-epochs", "0", "--batch-size", "2", "--num-workers", "0", "--stride", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["num_samples"] == 4 and set(metrics) >= {"uar", "war", "confusion_matrix"}
    rows = list(csv.DictReader((tmp_path / "ddp" / "predictions.csv").open()))
    assert sorted(r["clip_id"] for r in rows) == ["clip000", "clip002", "clip004", "clip006"]


def test_augmentation_settings_reach_the_training_loader(index, tmp_path, monkeypatch):
    import maedfer.train.finetune_loop as fl

    seen = {}
    real = fl.finetune_train_transform

    def spy(size, **kw):
        seen.update(kw, size=size)
        return real(size, **kw)

    monkeypatch.setattr(fl, "finetune_train_transform", spy)
    finetune(_cfg(epochs=1, auto_augment=None, crop_scale=(0.6, 1.0), reprob=0.0), index, fold=1,
             out_dir=tmp_path / "light")
    assert seen == {"size": 64, "auto_augment": None, "scale": (0.6, 1.0), "reprob": 0.0}
    with pytest.raises(ValueError, match="lower --warmup-epochs"):
        finetune(_cfg(epochs=1, warmup_epochs=3), index, fold=1, out_dir=tmp_path / "bad")


def test_finetune_accumulates_micro_batches_to_the_total_batch(index, tmp_path):
    """total_batch 4 with micro-batches of 2: two micro-batches per update, each with its own Mixup/CutMix draw
    (the first keeps the stream of a run without accumulation), recorded in the model file with the precision."""
    from maedfer.data.sampling import derive_rng

    total = finetune(_cfg(epochs=1, warmup_epochs=0, total_batch=4), index, fold=1, out_dir=tmp_path / "total")
    accum = finetune(_cfg(epochs=1, warmup_epochs=0, accum_steps=2), index, fold=1, out_dir=tmp_path / "accum")
    assert total["metrics"] == accum["metrics"]
    a, b = load_model(tmp_path / "total" / "model.pt"), load_model(tmp_path / "accum" / "model.pt")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    saved = a.extra["finetune_config"]
    assert (saved["total_batch"], saved["batch_size"], saved["precision"]) == (4, 2, "fp32")
    single = finetune(_cfg(epochs=1, warmup_epochs=0), index, fold=1, out_dir=tmp_path / "single")
    assert len(single["history"]) == 1 and load_model(tmp_path / "single" / "model.pt").extra[
        "finetune_config"]["total_batch"] is None
    assert derive_rng(0, 5, 0, 0).random() == derive_rng(0, 5, 0).random() != derive_rng(0, 5, 0, 1).random()


def test_a_total_batch_the_processes_cannot_split_is_one_line(index, tmp_path, capsys):
    from pipeline import finetune as stage

    code = stage.main(["--dataset", "toy", "--index", str(index), "--fold", "1", "--out", str(tmp_path / "x"),
                       "--arch", "lgi_former_test", "--arch-kwargs", json.dumps(GEOM), "--batch-size", "2",
                       "--total-batch", "3", "--num-workers", "0", "--no-tracking"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("finetune: error: total_batch 3 is not a multiple of batch_size 2 x 1 process(es) = 2; ")


def test_finetune_in_fp16_trains_and_tests_in_its_precision(index, tmp_path):
    summary = finetune(_cfg(epochs=1, warmup_epochs=0, precision="fp16"), index, fold=1, out_dir=tmp_path / "fp16")
    assert summary["metrics"]["num_samples"] == 4 and summary["history"][0]["train/loss"] > 0
    assert load_model(tmp_path / "fp16" / "model.pt").extra["finetune_config"]["precision"] == "fp16"
