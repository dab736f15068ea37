"""Pre-training loop: the loss goes down, and a run stopped mid-epoch and resumed ends bit-identical."""

from __future__ import annotations

import json

import pytest
import torch

from maedfer.models import load_model
from maedfer.settings import PretrainConfig
from maedfer.train.pretrain_loop import pretrain
from tests.test_datasets import write_toy_index


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return write_toy_index(tmp_path_factory.mktemp("pretrain_toy"), labelled=False)


def _cfg(**kw) -> PretrainConfig:
    base = dict(arch="pretrain_lgi_former_test",
                arch_kwargs=dict(img_size=64, num_frames=8, region_size=(2, 2, 4), mask_ratio=0.75),
                epochs=2, warmup_epochs=0, batch_size=2, num_workers=0, stride=2, base_lr=0.2, base_min_lr=0.02,
                seed=0)
    return PretrainConfig(**{**base, **kw})


def test_pretraining_lowers_the_loss(index, tmp_path):
    summary = pretrain(_cfg(epochs=6), index, tmp_path / "run")
    losses = summary["losses"]
    assert len(losses) == 6 * 4 and summary["skipped_steps"] == 0
    assert sum(losses[-4:]) / 4 < 0.9 * sum(losses[:4]) / 4, losses
    model = load_model(tmp_path / "run" / "model.pt")
    assert model.arch == "pretrain_lgi_former_test" and model.extra["global_step"] == 24
    assert sorted(p.name for p in (tmp_path / "run" / "previews").glob("*.png")) == ["epoch-0006.png"]
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 7))
    assert history[-1]["loss"] == pytest.approx(sum(losses[-4:]) / 4)
    assert set(history[0]) == {"epoch", "loss", "lr", "clips_per_s"}


def test_stop_mid_epoch_and_resume_gives_identical_weights(index, tmp_path):
    pretrain(_cfg(), index, tmp_path / "full")
    stopped = pretrain(_cfg(stop_after_steps=3), index, tmp_path / "resumed")
    assert stopped["stopped_at_step"] == 3  # mid first epoch (4 updates per epoch)
    assert not (tmp_path / "resumed" / "model.pt").exists()
    resumed = pretrain(_cfg(), index, tmp_path / "resumed")
    assert resumed["global_step"] == 8 and len(resumed["losses"]) == 5
    a = load_model(tmp_path / "full" / "model.pt").state_dict()
    b = load_model(tmp_path / "resumed" / "model.pt").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    full_history = json.loads((tmp_path / "full" / "history.json").read_text())
    resumed_history = json.loads((tmp_path / "resumed" / "history.json").read_text())
    assert [h["epoch"] for h in resumed_history] == [1, 2]  # the epoch records survive the restart
    assert resumed_history[1]["loss"] == full_history[1]["loss"]


def _weights(path):
    return load_model(path / "model.pt").state_dict()


def test_a_finished_run_or_changed_settings_start_afresh(index, tmp_path, caplog):
    # What Snakemake / DVC do after a setting or the code changed: the same command into the same folder.
    run = tmp_path / "run"
    first = pretrain(_cfg(epochs=1), index, run)
    assert (run / "checkpoints" / "finished.json").is_file()
    again = pretrain(_cfg(epochs=1), index, run)  # a finished run is not "resumed" into a no-op
    assert again["global_step"] == 4 and len(again["losses"]) == 4 and again["losses"] == first["losses"]
    assert (run / "checkpoints.previous" / "finished.json").is_file()  # the old run's state is kept aside

    # A killed run whose settings then change (base_lr) restarts instead of mixing two schedules...
    pretrain(_cfg(epochs=1, stop_after_steps=2), index, tmp_path / "killed")
    changed = pretrain(_cfg(epochs=1, base_lr=0.1), index, tmp_path / "killed")
    assert "settings differ (base_lr)" in caplog.text
    assert changed["global_step"] == 4 and len(changed["losses"]) == 4
    pretrain(_cfg(epochs=1, base_lr=0.1), index, tmp_path / "fresh")
    a, b = _weights(tmp_path / "killed"), _weights(tmp_path / "fresh")
    assert all(torch.equal(a[k], b[k]) for k in a)  # ... and ends as a fresh run with the new settings would

    # ... while a killed run resumed with other operational settings (workers, save interval) continues.
    pretrain(_cfg(epochs=1, stop_after_steps=2), index, tmp_path / "ops")
    resumed = pretrain(_cfg(epochs=1, save_every_steps=1, keep_last=3), index, tmp_path / "ops")
    assert resumed["global_step"] == 4 and len(resumed["losses"]) == 2


def test_gradient_accumulation_gives_the_effective_batch(index, tmp_path):
    one = pretrain(_cfg(epochs=1, batch_size=4), index, tmp_path / "b4")
    two = pretrain(_cfg(epochs=1, batch_size=2, accum_steps=2), index, tmp_path / "b2x2")
    assert one["total_batch"] == two["total_batch"] == 4
    assert one["lr"] == two["lr"] == pytest.approx(0.2 * 4 / 256)  # lr scaled by the effective batch
    assert len(one["losses"]) == len(two["losses"]) == 2  # 8 clips / 4 per update


@pytest.mark.slow
def test_pretrain_stage_cli_tracks_in_mlflow(index, tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    kwargs = json.dumps(dict(img_size=64, num_frames=8, region_size=[2, 2, 4], mask_ratio=0.75))
    cmd = [sys.executable, "-m", "pipeline.pretrain", "--index", str(index), "--out", str(tmp_path / "run"),
           "--arch", "pretrain_lgi_former_test", "--arch-kwargs", kwargs, "--epochs", "1", "--warmup-epochs", "0",
           "--batch-size", "2", "--num-workers", "0", "--stride", "2"]
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["global_step"] == 4
    assert (tmp_path / "run" / "model.pt").is_file()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("maedfer-pretrain")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.params["arch"] == "pretrain_lgi_former_test"
    assert run.data.params["resolved.precision"] == "fp32" and run.data.params["resolved.total_batch"] == "2"
    assert run.data.params["precision"] == "None"  # the setting as given; resolved.*: what it meant here
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 4
    bad = subprocess.run(cmd[:3] + ["--index", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "x")],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "index not found" in bad.stderr


@pytest.mark.slow
def test_two_process_ddp_pretraining_with_accumulation(index, tmp_path):
    """torchrun, 2 gloo processes, 2 micro-batches per update (DDP no_sync on the first): the effective batch
    counts every rank and micro-batch, and the run writes the model and one history record per epoch."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    cmd = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node", "2",
           "-m", "pipeline.pretrain", "--index", str(index), "--out", str(tmp_path / "ddp"), "--no-tracking",
           "--arch", "pretrain_lgi_former_test", "--arch-kwargs",
           json.dumps(dict(img_size=64, num_frames=8, region_size=[2, 2, 4], mask_ratio=0.75)),
           "--epochs", "1", "--warmup-epochs", "0", "--batch-size", "1", "--accum-steps", "2", "--num-workers", "0",
           "--stride", "2", "--preview-every-epochs", "0"]
    proc = subprocess.run(cmd, cwd=repo, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["total_batch"] == 4 and summary["global_step"] == 2  # 8 clips / (1 x 2 micro x 2 ranks)
    assert load_model(tmp_path / "ddp" / "model.pt").arch == "pretrain_lgi_former_test"
    assert len(json.loads((tmp_path / "ddp" / "history.json").read_text())) == 1


def test_a_run_stopped_part_way_down_a_longer_schedule_writes_its_model_and_finishes(index, tmp_path):
    """The paper's pre-training: epoch 50 of a 100-epoch cosine (here 2 of 5); the end is the run's end."""
    from maedfer.train.schedule import lr_at

    summary = pretrain(_cfg(epochs=2, schedule_epochs=5, warmup_epochs=1), index, tmp_path / "run")
    assert summary["global_step"] == 8 and (tmp_path / "run" / "checkpoints" / "finished.json").is_file()
    model = load_model(tmp_path / "run" / "model.pt")
    assert model.extra["pretrain_config"]["schedule_epochs"] == 5 and model.extra["global_step"] == 8
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    peak, low = 0.2 * 2 / 256, 0.02 * 2 / 256
    assert history[-1]["lr"] == pytest.approx(lr_at(7, peak, low, total_steps=20, warmup_steps=4), rel=1e-12)
    assert history[-1]["lr"] > 0.5 * peak  # not the end of a 2-epoch cosine
    with pytest.raises(ValueError, match=r"^schedule_epochs \(1\) is less than epochs \(2\)"):
        pretrain(_cfg(schedule_epochs=1), index, tmp_path / "short")


def test_fp16_run_stopped_and_resumed_gives_identical_weights(index, tmp_path):
    from maedfer.train.checkpoint import find_resume_checkpoint, read_training_state

    full = pretrain(_cfg(precision="fp16"), index, tmp_path / "full")
    assert full["precision"] == "fp16" and full["amp_skipped_steps"] >= 0
    assert load_model(tmp_path / "full" / "model.pt").extra["pretrain_config"]["precision"] == "fp16"
    pretrain(_cfg(precision="fp16", stop_after_steps=3), index, tmp_path / "resumed")
    saved = read_training_state(find_resume_checkpoint(tmp_path / "resumed" / "checkpoints"))
    assert saved["scaler"]["scale"] > 0 and saved["config"]["precision"] == "fp16"
    pretrain(_cfg(precision="fp16"), index, tmp_path / "resumed")
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    default = pretrain(_cfg(epochs=1), index, tmp_path / "default")
    assert default["precision"] == "fp32" and default["amp_skipped_steps"] == 0  # CPU default: fp32, no scaler


def test_decay_region_tokens_follows_the_authors_pretraining(index, tmp_path):
    from maedfer.train.checkpoint import find_resume_checkpoint, read_training_state

    def decay_of(run: str, **kw) -> dict[str, float]:
        pretrain(_cfg(epochs=1, stop_after_steps=1, **kw), index, tmp_path / run)
        state = read_training_state(find_resume_checkpoint(tmp_path / run / "checkpoints"))
        groups = state["optimizer"]["param_groups"]
        return {n: g["weight_decay"] for g in groups for n in g["param_names"]}

    ours, authors = decay_of("ours"), decay_of("authors", decay_region_tokens=True)
    assert ours["encoder.region_tokens"] == 0.0 and authors["encoder.region_tokens"] == 0.05
    assert ours["mask_token"] == authors["mask_token"] == 0.0  # the authors' skip list has the mask token
    assert {k for k in ours if ours[k] != authors[k]} == {"encoder.region_tokens"}
