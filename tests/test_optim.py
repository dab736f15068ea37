"""Optimizer groups (weight decay, layer-wise lr decay) and the warm-up + cosine schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from maedfer.train.optim import build_optimizer, layer_scales, param_groups, scaled_lr
from maedfer.train.schedule import WarmupCosineSchedule, lr_at


class ToyEncoder(nn.Module):
    """Implements the models' optimiser interface: no_weight_decay, layer_id, num_layers."""

    def __init__(self, depth: int = 3, dim: int = 8) -> None:
        super().__init__()
        self.depth = depth
        self.patch_embed = nn.Linear(4, dim)
        self.tokens = nn.Parameter(torch.zeros(2, dim))  # 2-D, exempt only by name
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim)) for _ in range(depth))
        self.head = nn.Linear(dim, 5)
        self.frozen = nn.Parameter(torch.ones(3, 3), requires_grad=False)

    @property
    def num_layers(self) -> int:
        return self.depth + 2

    def no_weight_decay(self) -> set[str]:
        return {"tokens"}

    def layer_id(self, name: str) -> int:
        if name.startswith("patch_embed"):
            return 0
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        return self.depth + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 4) -> (B, 5)
        x = self.patch_embed(x) + self.tokens.mean(0)
        for blk in self.blocks:
            x = blk(x)
        return self.head(x)


def _by_name(groups: list[dict]) -> dict[str, dict]:
    return {n: g for g in groups for n in g["param_names"]}


def test_weight_decay_exemptions_and_each_parameter_once() -> None:
    model = ToyEncoder()
    groups = param_groups(model, weight_decay=0.05)
    names = [n for g in groups for n in g["param_names"]]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(names) == sorted(trainable) and "frozen" not in names
    g = _by_name(groups)
    for n in names:
        is_norm = n.startswith("blocks.") and n.split(".")[2] == "0"  # blocks.i.0 is the LayerNorm
        exempt = n.endswith(".bias") or n == "tokens" or is_norm
        assert g[n]["weight_decay"] == (0.0 if exempt else 0.05), n
    assert all(gr["lr_scale"] == 1.0 for gr in groups)


def test_decay_names_take_names_out_of_the_skip_list_only() -> None:
    model = ToyEncoder()
    g = _by_name(param_groups(model, weight_decay=0.05, decay_names={"tokens", "head.bias", "blocks.0.0.weight"}))
    assert g["tokens"]["weight_decay"] == 0.05  # listed by no_weight_decay(), decayed on request
    assert g["head.bias"]["weight_decay"] == g["blocks.0.0.weight"]["weight_decay"] == 0.0  # biases, norms stay exempt
    plain = _by_name(param_groups(model, weight_decay=0.05))
    assert {n for n in plain if plain[n]["weight_decay"] != g[n]["weight_decay"]} == {"tokens"}


def test_layer_decay_scales_match_the_paper() -> None:
    model = ToyEncoder(depth=16)
    g = _by_name(param_groups(model, weight_decay=0.05, layer_decay=0.75))
    assert g["patch_embed.weight"]["lr_scale"] == pytest.approx(0.75**17)
    assert g["blocks.0.1.weight"]["lr_scale"] == pytest.approx(0.75**16)
    assert g["blocks.15.1.weight"]["lr_scale"] == pytest.approx(0.75**1)
    assert g["head.weight"]["lr_scale"] == 1.0 and g["tokens"]["lr_scale"] == 1.0
    assert layer_scales(4, 0.5) == [0.125, 0.25, 0.5, 1.0]


def test_real_lgi_former_groups() -> None:
    from maedfer.models.registry import create_model

    model = create_model("lgi_former_base_patch16_160", num_classes=7, init=False)
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.05, layer_decay=0.75)
    g = _by_name(opt.param_groups)
    assert g["encoder.patch_embed.proj.weight"]["lr_scale"] == pytest.approx(0.75**17)
    assert g["encoder.patch_embed.proj.weight"]["lr"] == pytest.approx(1e-3 * 0.75**17)
    assert g["head.weight"]["lr_scale"] == 1.0 and g["head.weight"]["weight_decay"] == 0.05
    assert g["encoder.region_tokens"]["weight_decay"] == 0.0
    assert g["encoder.blocks.3.mlp.fc1.weight"]["weight_decay"] == 0.05


def test_build_optimizer_trains_and_checks_the_interface() -> None:
    torch.manual_seed(0)
    model = ToyEncoder()
    opt = build_optimizer(model, lr=0.1, weight_decay=0.05, betas=(0.9, 0.95), layer_decay=0.5)
    assert opt.defaults["betas"] == (0.9, 0.95)
    x, y = torch.randn(16, 4), torch.randint(0, 5, (16,))
    losses = []
    for _ in range(20):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="layer_id"):
        build_optimizer(nn.Linear(2, 2), lr=0.1, weight_decay=0.0, layer_decay=0.75)
    bad = ToyEncoder()
    bad.layer_id = lambda name: 99  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="outside"):
        param_groups(bad, 0.05, layer_decay=0.75)


def test_scaled_lr() -> None:
    assert scaled_lr(1e-3, 256) == 1e-3
    assert scaled_lr(3e-4, 512) == pytest.approx(6e-4)
    with pytest.raises(ValueError):
        scaled_lr(1e-3, 0)


def videomae_cosine_scheduler(base_value, final_value, epochs, niter_per_ep, warmup_epochs=0, start_warmup_value=0):
    """VideoMAE utils.cosine_scheduler (the authors' schedule), re-typed here as the reference."""
    warmup_schedule = np.array([])
    warmup_iters = warmup_epochs * niter_per_ep
    if warmup_epochs > 0:
        warmup_schedule = np.linspace(start_warmup_value, base_value, warmup_iters)
    iters = np.arange(epochs * niter_per_ep - warmup_iters)
    schedule = np.array(
        [final_value + 0.5 * (base_value - final_value) * (1 + math.cos(math.pi * i / (len(iters)))) for i in iters]
    )
    return np.concatenate((warmup_schedule, schedule))


@pytest.mark.parametrize("epochs,per_ep,warm,start", [(10, 7, 2, 0.0), (5, 3, 0, 0.0), (4, 5, 1, 1e-6)])
def test_lr_at_matches_videomae(epochs: int, per_ep: int, warm: int, start: float) -> None:
    ref = videomae_cosine_scheduler(1e-3, 1e-5, epochs, per_ep, warm, start)
    ours = [lr_at(s, 1e-3, 1e-5, epochs * per_ep, warm * per_ep, start) for s in range(epochs * per_ep)]
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=0)
    assert lr_at(epochs * per_ep + 5, 1e-3, 1e-5, epochs * per_ep, warm * per_ep) == 1e-5


def test_schedule_object_sets_scaled_lrs_and_resumes_exactly() -> None:
    model = ToyEncoder()
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.05, layer_decay=0.5)
    sched = WarmupCosineSchedule.from_epochs(opt, 1e-3, 1e-5, epochs=4, steps_per_epoch=5, warmup_epochs=1)
    applied = [sched.step() for _ in range(7)]
    assert applied == [lr_at(s, 1e-3, 1e-5, 20, 5) for s in range(7)]
    for group in opt.param_groups:
        assert group["lr"] == pytest.approx(applied[-1] * group["lr_scale"])
    state = sched.state_dict()
    rest = [sched.step() for _ in range(13)]

    opt2 = build_optimizer(ToyEncoder(), lr=1e-3, weight_decay=0.05, layer_decay=0.5)
    resumed = WarmupCosineSchedule(opt2, 1e-3, 1e-5, total_steps=20, warmup_steps=5)
    resumed.load_state_dict(state)
    assert [resumed.step() for _ in range(13)] == rest
    other = WarmupCosineSchedule(opt2, 2e-3, 1e-5, total_steps=20, warmup_steps=5)
    with pytest.raises(ValueError, match="base_lr"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupCosineSchedule(opt2, 1e-3, 0.0, total_steps=5, warmup_steps=6)
