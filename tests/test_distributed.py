"""Process-group helpers; a real 2-process gloo run under torchrun gathers padded test predictions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from maedfer.metrics import compute_metrics
from maedfer.train.distributed import (
    DistributedSetupError,
    all_reduce_mean,
    barrier,
    get_world_size,
    init_distributed,
    is_main_process,
    seed_everything,
    unwrap_model,
)

REPO = Path(__file__).resolve().parents[1]
NAMES = ["neutral", "happy", "sad", "angry", "surprise"]
N_CLIPS = 11  # odd: DistributedSampler pads 2 ranks to 12 rows

SCRIPT = r"""
import json, sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DistributedSampler

from maedfer.metrics import compute_metrics, gather_predictions
from maedfer.train.checkpoint import load_training_state, read_training_state, save_training_state
from maedfer.train.distributed import all_reduce_mean, barrier, cleanup, init_distributed, seed_everything
from maedfer.train.optim import build_optimizer

out = Path(sys.argv[1])
names = json.loads(sys.argv[2])
info = init_distributed()
data = np.load(out / "data.npz")
labels, probs = data["labels"], data["probs"]
sampler = DistributedSampler(range(len(labels)), num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=3)
idx = np.array(list(sampler))
# predictions arrive in batches of 2, as tensors, as in a test loop
parts = [(torch.as_tensor(idx[i:i + 2]), torch.as_tensor(probs[idx[i:i + 2]]), torch.as_tensor(labels[idx[i:i + 2]]))
         for i in range(0, len(idx), 2)]
clips, p, y = gather_predictions(*(torch.cat(t) for t in zip(*parts)))
metrics = compute_metrics(y, p, names)

seed_everything(0, info.rank)
model = DDP(nn.Linear(3, 2))
opt = build_optimizer(model, lr=1e-3, weight_decay=0.05)
saved = save_training_state(out / "ckpt", model=model, optimizer=opt, epoch=1, step_in_epoch=0, global_step=5)
after_save = torch.rand(3).tolist()
torch.manual_seed(1000 + info.rank)
state = load_training_state(out / "ckpt" / "checkpoint-last.pt", model=model, optimizer=opt)
after_load = torch.rand(3).tolist()
payload = read_training_state(out / "ckpt" / "checkpoint-last.pt")
barrier()
result = {
    "rank": info.rank, "world_size": info.world_size, "device": str(info.device), "is_main": info.is_main,
    "shard": idx.tolist(), "clips": clips.tolist(), "metrics": metrics,
    "mean_rank": all_reduce_mean(float(info.rank)),
    "mean_tensor": all_reduce_mean(torch.tensor([2.0 * info.rank])).tolist(),
    "saved_path": None if saved is None else str(saved), "after_save": after_save, "after_load": after_load,
    "ckpt_keys": sorted(payload["model"]), "ckpt_world": payload["world_size"], "ckpt_rngs": len(payload["rng"]),
    "resumed_step": state.global_step,
}
(out / f"rank{info.rank}.json").write_text(json.dumps(result))
cleanup()
"""


def test_single_process_defaults(monkeypatch) -> None:
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    info = init_distributed(use_cuda=False)
    assert (info.rank, info.world_size, info.local_rank, info.is_main, info.distributed) == (0, 1, 0, True, False)
    assert info.device == torch.device("cpu")
    assert is_main_process() and get_world_size() == 1
    barrier()
    assert all_reduce_mean(3.0) == 3.0
    t = torch.tensor([1.0, 2.0])
    assert torch.equal(all_reduce_mean(t), t)
    model = torch.nn.Linear(2, 2)
    assert unwrap_model(torch.compile(model)) is model
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(DistributedSetupError, match="WORLD_SIZE"):
        init_distributed()


def test_seed_everything_is_reproducible_and_rank_dependent() -> None:
    def draw(seed: int, rank: int) -> tuple:
        assert seed_everything(seed, rank) == seed + rank
        import random

        return random.random(), float(np.random.rand()), torch.rand(1).item()

    assert draw(5, 0) == draw(5, 0)
    assert draw(5, 0) != draw(5, 1)


@pytest.mark.slow
def test_two_process_gloo_gather_matches_single_process(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, N_CLIPS)  # class 4 ("surprise") absent from this "fold"
    probs = rng.random((N_CLIPS, len(NAMES))).astype(np.float32)
    np.savez(tmp_path / "data.npz", labels=labels, probs=probs)
    script = tmp_path / "ddp_script.py"
    script.write_text(SCRIPT)
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO),
        "CUDA_VISIBLE_DEVICES": "",
        "MAEDFER_LOGLEVEL": "WARNING",
    }
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path), json.dumps(NAMES)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))

    # the shards really overlap (sampler padding), yet every clip counts exactly once
    assert len(r0["shard"]) + len(r1["shard"]) == N_CLIPS + 1
    assert len(set(r0["shard"]) & set(r1["shard"])) == 1
    expected = compute_metrics(labels, probs, NAMES)
    assert r0["clips"] == r1["clips"] == list(range(N_CLIPS))
    assert r0["metrics"] == r1["metrics"] == json.loads(json.dumps(expected))
    assert expected["absent_classes"] == ["surprise"]

    assert (r0["world_size"], r0["device"], r0["is_main"], r1["is_main"]) == (2, "cpu", True, False)
    assert r0["mean_rank"] == r1["mean_rank"] == 0.5 and r0["mean_tensor"] == [1.0]
    # checkpoint under DDP: rank 0 wrote it, keys unwrapped, one RNG state per rank restored per rank
    assert r0["saved_path"].endswith("checkpoint-00000005.pt") and r1["saved_path"] is None
    assert r0["ckpt_keys"] == ["bias", "weight"] and r0["ckpt_world"] == 2 and r0["ckpt_rngs"] == 2
    assert r0["after_load"] == r0["after_save"] and r1["after_load"] == r1["after_save"]
    assert r0["after_save"] != r1["after_save"]
    assert r0["resumed_step"] == r1["resumed_step"] == 5
