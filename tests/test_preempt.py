"""Preemption and resumed-run history: SIGTERM/SIGUSR1 checkpoint and exit 143, kill -9 and a lost DDP rank resume.

A resumed run ends with the uninterrupted run's weights and history (the epoch's mean loss over all
its updates) and continues the killed run's MLflow run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from maedfer.models import load_model
from maedfer.settings import PretrainConfig
from maedfer.tracking import Tracker
from maedfer.train.checkpoint import find_resume_checkpoint, saved_extra
from maedfer.train.engine import Engine, EpochStats
from maedfer.train.preemption import PREEMPTED_EXIT_CODE, Preempted
from maedfer.train.pretrain_loop import pretrain
from tests.test_datasets import write_toy_index

REPO = Path(__file__).resolve().parents[1]
TINY = dict(arch="pretrain_lgi_former_test",
            arch_kwargs=dict(img_size=64, num_frames=8, region_size=[2, 2, 4], mask_ratio=0.75),
            epochs=2, warmup_epochs=0, batch_size=2, num_workers=0, stride=2, base_lr=0.2, base_min_lr=0.02, seed=0)
FLAGS = ["--arch", TINY["arch"], "--arch-kwargs", json.dumps(TINY["arch_kwargs"]), "--epochs", "2",
         "--warmup-epochs", "0", "--batch-size", "2", "--num-workers", "0", "--stride", "2", "--base-lr", "0.2",
         "--base-min-lr", "0.02", "--seed", "0", "--save-every-steps", "1", "--mlflow-experiment", "preempt-test"]
# The stage, with a test hook: rank KILL_RANK sends itself KILL_SIG before update KILL_AT (first attempt only).
HOOKED_STAGE = r"""
import os, signal, sys
from maedfer.train.engine import Engine

sig, at = getattr(signal, os.environ["KILL_SIG"]), int(os.environ["KILL_AT"])
armed = (os.environ.get("RANK", "0") == os.environ.get("KILL_RANK", "0")
         and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0")
update = Engine.update

def hooked(self, batches, step):
    if self.tracker is not None:
        self.tracker.flush()  # the MLflow run is open before the first checkpoint, as in a run of hours
    if armed and self.global_step == at:
        os.kill(os.getpid(), sig)
    return update(self, batches, step)

Engine.update = hooked
from pipeline.pretrain import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread here and in the subprocesses: the same sums whatever the load (MKL adapts its threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return write_toy_index(tmp_path_factory.mktemp("preempt_toy"), labelled=False)


@pytest.fixture(scope="module")
def uninterrupted(index, tmp_path_factory) -> Path:
    """One uninterrupted run (8 updates, 4 per epoch) -> its folder."""
    out = tmp_path_factory.mktemp("full") / "run"
    pretrain(PretrainConfig(**TINY), index, out)
    return out


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_model(run / "model.pt").state_dict()


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _history(run: Path) -> list[dict]:
    return json.loads((run / "history.json").read_text())


def _signal_at(monkeypatch, sig: signal.Signals, at: int) -> None:
    """Send ``sig`` to this process before update ``at`` (once)."""
    update, sent = Engine.update, []

    def hooked(self, batches, step):
        if self.global_step == at and not sent:
            sent.append(at)
            os.kill(os.getpid(), sig)
        return update(self, batches, step)

    monkeypatch.setattr(Engine, "update", hooked)


@pytest.mark.parametrize(("sig", "at"), [(signal.SIGTERM, 1), (signal.SIGUSR1, 3)])
def test_signal_mid_epoch_checkpoints_and_the_rerun_ends_like_the_uninterrupted_run(
        index, uninterrupted, tmp_path, monkeypatch, sig, at):
    before = signal.getsignal(sig)
    _signal_at(monkeypatch, sig, at)
    with pytest.raises(Preempted) as stopped:
        pretrain(PretrainConfig(**TINY), index, tmp_path / "run")
    assert stopped.value.code == PREEMPTED_EXIT_CODE == 143
    assert f"checkpointed at update {at + 1}" in str(stopped.value)
    assert signal.getsignal(sig) == before  # the handler is the engine's only while it trains
    ckpts = tmp_path / "run" / "checkpoints"
    assert (ckpts / f"checkpoint-{at + 1:08d}.pt").is_file() and not (tmp_path / "run" / "model.pt").exists()
    monkeypatch.undo()
    resumed = pretrain(PretrainConfig(**TINY), index, tmp_path / "run")
    assert resumed["global_step"] == 8 and len(resumed["losses"]) == 8 - (at + 1)
    assert _same_weights(uninterrupted, tmp_path / "run")
    full, again = _history(uninterrupted), _history(tmp_path / "run")
    # the interrupted epoch's mean loss is over all its updates, those before the signal included
    assert [(h["epoch"], h["loss"], h["lr"]) for h in again] == [(h["epoch"], h["loss"], h["lr"]) for h in full]
    if at == 3:  # signalled on the epoch's last update: the re-run only ends that epoch, none of its clips ran
        assert math.isnan(again[0]["clips_per_s"])
    else:  # the re-run's own updates of the epoch and their time
        assert again[0]["clips_per_s"] > 0


def test_epoch_stats_count_only_the_updates_this_process_ran(monkeypatch):
    stats = EpochStats(0, 0.0, [1.0, 2.0, 3.0, 6.0], resumed_updates=3)
    assert stats.updates_run() == 1 and stats.mean_loss() == 3.0
    monkeypatch.setattr(EpochStats, "seconds", lambda self: 2.0)  # resumed two seconds ago
    assert stats.clips_per_s(8) == 4.0  # 1 update of 8 clips in 2 s: the 3 updates before the resume do not count
    assert math.isnan(EpochStats(0, 0.0, [1.0], resumed_updates=1).clips_per_s(8))


def _hooked_stage(tmp_path: Path, index: Path, out: Path, sig: str, at: int, *extra: str,
                  launcher: list[str] | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    script = tmp_path / "hooked_stage.py"
    script.write_text(HOOKED_STAGE)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": "",
           "KILL_SIG": sig, "KILL_AT": str(at), **(env or {})}
    cmd = [*(launcher or [sys.executable]), str(script), "--index", str(index), "--out", str(out), *FLAGS, *extra]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _runs(uri: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("preempt-test")
    return client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"]) if exp else []


def _metric_steps(uri: str, run_id: str, key: str) -> list[int]:
    from mlflow.tracking import MlflowClient

    return sorted({m.step for m in MlflowClient(tracking_uri=uri).get_metric_history(run_id, key)})


@pytest.mark.slow
def test_killed_run_resumes_its_history_and_its_mlflow_run(index, uninterrupted, tmp_path, monkeypatch):
    from pipeline.pretrain import main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run = tmp_path / "run"
    # kill -9 mid-epoch (after the checkpoint of update 3, 4 updates per epoch)
    killed = _hooked_stage(tmp_path, index, run, "SIGKILL", 3, env={"MLFLOW_TRACKING_URI": uri})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    [dead] = _runs(uri)
    assert dead.info.status == "RUNNING"  # nothing can record a kill -9
    assert main(["--index", str(index), "--out", str(run), *FLAGS]) == 0
    [same] = _runs(uri)  # the resumed run continues the killed one: one run with the whole history
    assert same.info.run_id == dead.info.run_id and same.info.status == "FINISHED"
    assert same.data.tags["maedfer.resumes"] == "1" and same.data.tags["maedfer.resumed_at_step"] == "3"
    assert _metric_steps(uri, same.info.run_id, "train/loss") == list(range(1, 9))
    assert _same_weights(uninterrupted, run)
    assert [h["loss"] for h in _history(run)] == [h["loss"] for h in _history(uninterrupted)]

    # a killed run (here: stopped, its run left open) that is restarted afresh (--no-resume) is marked FAILED
    other, cfg = tmp_path / "other", PretrainConfig(**{**TINY, "save_every_steps": 1})
    abandoned = Tracker("preempt-test", tracking_uri=uri).start()
    # the run opens in the tracker's thread; only an open run's id reaches the checkpoints (on a loaded machine,
    # e.g. under pytest -n, two tiny updates can end before it opens)
    assert abandoned.run_id is not None
    pretrain(dataclasses.replace(cfg, stop_after_steps=2), index, other, tracker=abandoned)
    assert abandoned.flush()
    with Tracker("preempt-test", tracking_uri=uri, lazy_start=True) as fresh:
        pretrain(cfg, index, other, resume=False, tracker=fresh)
    assert [r.info.status for r in _runs(uri)] == ["FINISHED", "FAILED", "FINISHED"]


@pytest.mark.slow
def test_sigterm_to_the_stage_exits_143_and_the_rerun_continues(index, uninterrupted, tmp_path, monkeypatch):
    from pipeline.pretrain import main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run = tmp_path / "run"
    stopped = _hooked_stage(tmp_path, index, run, "SIGTERM", 5, env={"MLFLOW_TRACKING_URI": uri})
    assert stopped.returncode == PREEMPTED_EXIT_CODE, stopped.stderr[-3000:]
    assert "SIGTERM: checkpointed at update 6 (epoch 2)" in stopped.stderr
    [preempted] = _runs(uri)
    assert preempted.info.status == "KILLED"
    assert main(["--index", str(index), "--out", str(run), *FLAGS]) == 0
    [same] = _runs(uri)
    assert same.info.run_id == preempted.info.run_id and same.info.status == "FINISHED"
    assert _same_weights(uninterrupted, run)


TORCHRUN = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc-per-node", "2"]


@pytest.fixture(scope="module")
def ddp_uninterrupted(index, tmp_path_factory) -> Path:
    """An uninterrupted 2-process gloo run (2 updates per epoch of 2 x 2 clips) -> its folder."""
    tmp = tmp_path_factory.mktemp("ddp")
    full = _hooked_stage(tmp, index, tmp / "full", "SIGKILL", 99, "--no-tracking", launcher=TORCHRUN)
    assert full.returncode == 0, full.stderr[-3000:]
    return tmp / "full"


@pytest.mark.slow
def test_lost_rank_under_torchrun_restarts_the_group_from_the_last_checkpoint(index, ddp_uninterrupted, tmp_path):
    # rank 1 dies (kill -9) before update 3 (mid second epoch): the agent stops rank 0, restarts both (one restart
    # allowed), and they continue from checkpoint 3
    lost = _hooked_stage(tmp_path, index, tmp_path / "lost", "SIGKILL", 3, "--no-tracking",
                         launcher=[*TORCHRUN, "--max-restarts", "1"], env={"KILL_RANK": "1"})
    assert lost.returncode == 0, lost.stderr[-3000:]
    last = find_resume_checkpoint(tmp_path / "lost" / "checkpoints")
    assert saved_extra(last)["resumes"] == 1  # the agent restarted the group, which resumed (not restarted afresh)
    assert _same_weights(ddp_uninterrupted, tmp_path / "lost")
    assert [h["loss"] for h in _history(ddp_uninterrupted)] == [h["loss"] for h in _history(tmp_path / "lost")]


@pytest.mark.slow
def test_sigterm_to_one_rank_checkpoints_the_group_at_the_same_update(index, ddp_uninterrupted, tmp_path):
    stopped = _hooked_stage(tmp_path, index, tmp_path / "run", "SIGTERM", 2, "--no-tracking", launcher=TORCHRUN,
                            env={"KILL_RANK": "1"})
    assert stopped.returncode != 0
    assert "[1]:" in stopped.stderr and f"exitcode  : {PREEMPTED_EXIT_CODE}" in stopped.stderr  # torchrun's report
    assert "SIGTERM: checkpointed at update 3 (epoch 2)" in stopped.stderr  # rank 1
    assert "another rank's SIGTERM/SIGUSR1: checkpointed at update 3 (epoch 2)" in stopped.stderr  # rank 0
    again = _hooked_stage(tmp_path, index, tmp_path / "run", "SIGKILL", 99, "--no-tracking", launcher=TORCHRUN)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _same_weights(ddp_uninterrupted, tmp_path / "run")
    assert [h["loss"] for h in _history(ddp_uninterrupted)] == [h["loss"] for h in _history(tmp_path / "run")]
