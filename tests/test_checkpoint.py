"""Training-state checkpoints: exact resume (weights, optimizer, schedule, scaler, RNG), rotation, discovery."""

from __future__ import annotations

import random
from enum import StrEnum
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from maedfer.train.checkpoint import (
    LAST_NAME,
    CheckpointError,
    find_resume_checkpoint,
    list_checkpoints,
    load_training_state,
    read_training_state,
    save_training_state,
)
from maedfer.train.distributed import seed_everything
from maedfer.train.optim import build_optimizer
from maedfer.train.schedule import WarmupCosineSchedule


class Kind(StrEnum):
    A = "a"


def _parts(seed: int = 0, init_scale: float = 1024.0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.LayerNorm(16), nn.Linear(16, 3))
    opt = build_optimizer(model, lr=1e-2, weight_decay=0.05)
    sched = WarmupCosineSchedule(opt, 1e-2, 1e-4, total_steps=12, warmup_steps=3)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    return model, opt, sched, scaler


def _train_step(model, opt, sched, scaler) -> list[float]:
    """One step whose data AND dropout-like noise come from the global RNGs (python, numpy, torch)."""
    x = torch.randn(8, 6) + float(np.random.rand()) + random.random()
    y = torch.randint(0, 3, (8,))
    sched.step()
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    return [loss.item(), float(np.random.rand()), random.random()]


def test_resume_is_exact(tmp_path: Path) -> None:
    seed_everything(7)
    model, opt, sched, scaler = _parts()
    for _ in range(4):
        _train_step(model, opt, sched, scaler)
    path = save_training_state(
        tmp_path,
        model=model,
        optimizer=opt,
        scheduler=sched,
        scaler=scaler,
        epoch=1,
        step_in_epoch=2,
        global_step=4,
        config={"lr": 1e-2, "out": tmp_path},
        extra={"mlflow_run_id": "abc", "sampler_seed": np.int64(3), "kind": Kind.A},
    )
    assert path == tmp_path / "checkpoint-00000004.pt"
    scale_at_save = scaler.get_scale()
    uninterrupted = [_train_step(model, opt, sched, scaler) for _ in range(5)]
    final = [p.detach().clone() for p in model.parameters()]

    seed_everything(12345)  # a fresh process: other RNG state, other initial weights
    model2, opt2, sched2, scaler2 = _parts(seed=99, init_scale=8.0)
    state = load_training_state(
        find_resume_checkpoint(tmp_path), model=model2, optimizer=opt2, scheduler=sched2, scaler=scaler2
    )
    assert (state.epoch, state.step_in_epoch, state.global_step, state.world_size) == (1, 2, 4, 1)
    assert state.config == {"lr": 1e-2, "out": str(tmp_path)}  # Path stored as str
    assert state.extra == {"mlflow_run_id": "abc", "sampler_seed": 3, "kind": "a"}
    assert sched2.step_count == 4 and scaler2.get_scale() == scale_at_save == 1024.0
    resumed = [_train_step(model2, opt2, sched2, scaler2) for _ in range(5)]
    assert resumed == uninterrupted
    for a, b in zip(final, model2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_rotation_and_last_link(tmp_path: Path) -> None:
    model, opt, sched, scaler = _parts()
    for step in (10, 20, 30, 40):
        save_training_state(
            tmp_path, model=model, optimizer=opt, epoch=step // 10, step_in_epoch=0, global_step=step, keep_last=2
        )
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-00000030.pt", "checkpoint-00000040.pt"]
    assert read_training_state(tmp_path / LAST_NAME)["global_step"] == 40
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-00000030.pt",
        "checkpoint-00000040.pt",
        LAST_NAME,
    ]  # no temporaries
    with pytest.raises(ValueError, match="keep_last"):
        save_training_state(tmp_path, model=model, optimizer=opt, epoch=0, step_in_epoch=0, global_step=1, keep_last=0)


def test_find_resume_checkpoint_skips_broken_files(tmp_path: Path) -> None:
    assert find_resume_checkpoint(tmp_path / "missing") is None
    assert find_resume_checkpoint(tmp_path) is None
    model, opt, _, _ = _parts()
    for step in (1, 2):
        save_training_state(tmp_path, model=model, optimizer=opt, epoch=0, step_in_epoch=step, global_step=step)
    assert find_resume_checkpoint(tmp_path) == tmp_path / LAST_NAME
    (tmp_path / LAST_NAME).unlink()
    (tmp_path / LAST_NAME).write_bytes(b"not a zip")  # e.g. a truncated copy
    (tmp_path / "checkpoint-00000003.pt").write_bytes(b"garbage")
    assert find_resume_checkpoint(tmp_path) == tmp_path / "checkpoint-00000002.pt"


def test_bad_files_and_values_are_refused(tmp_path: Path) -> None:
    model, opt, sched, _ = _parts()
    with pytest.raises(TypeError, match=r"extra\.fn"):
        save_training_state(
            tmp_path, model=model, optimizer=opt, epoch=0, step_in_epoch=0, global_step=0, extra={"fn": object()}
        )
    assert not list(tmp_path.iterdir())
    torch.save({"state_dict": {}}, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="not a maedfer training checkpoint"):
        load_training_state(tmp_path / "model.pt", model=model)
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_training_state(tmp_path / "junk.pt", model=model)
    with pytest.raises(FileNotFoundError):
        load_training_state(tmp_path / "none.pt", model=model)
    save_training_state(tmp_path, model=model, optimizer=opt, epoch=0, step_in_epoch=0, global_step=0)
    with pytest.raises(CheckpointError, match="no scheduler"):
        load_training_state(tmp_path / LAST_NAME, model=model, scheduler=sched)
