"""The training engine: accumulation, the non-finite and warm-up policies (engine and both stages), autocast."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from maedfer.models import load_model
from maedfer.settings import FinetuneConfig, PretrainConfig
from maedfer.train.engine import Engine, Hooks, Recipe
from maedfer.train.finetune_loop import finetune
from maedfer.train.policy import NonFiniteGuard, NonFiniteLossError, autocast, check_warmup, resolve_precision
from maedfer.train.pretrain_loop import pretrain
from tests.test_datasets import write_toy_index

GEOM = dict(img_size=64, num_frames=8, region_size=(2, 2, 4))
WARMUP_MESSAGE = "warmup_epochs (3) is more than epochs (1); lower --warmup-epochs"


class _Regression(nn.Module):
    """y = w x + b, with a weight-decayed matrix and an exempt bias (two optimiser groups)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def _data(n: int = 8) -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, generator=g)
    return TensorDataset(x, x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3)


def _train(tmp_path, name: str, batch_size: int, accum_steps: int = 1, nan_at: set[int] = frozenset(),
           huge_at: set[int] = frozenset(), factor: float = 1.0, **kw) -> tuple[Engine, list[torch.Tensor]]:
    """One toy run through the engine -> (engine, the weight's gradient after each micro-batch's backward).

    The step's loss (times ``factor``) is NaN at the updates in ``nan_at`` and finite but 1e36 times
    larger at those in ``huge_at`` (its scaled fp16 gradients overflow)."""
    recipe = Recipe(epochs=2, warmup_epochs=0, batch_size=batch_size, accum_steps=accum_steps, base_lr=25.6,
                    base_min_lr=2.56, weight_decay=0.05, **kw)
    engine = Engine(recipe, tmp_path / name, {"name": "toy"}, desc="toy")
    torch.manual_seed(0)  # the same initial weights for every run
    model = engine.attach(_Regression())
    grads: list[torch.Tensor] = []
    model.fc.weight.register_post_accumulate_grad_hook(lambda p: grads.append(p.grad.clone()))
    data = _data()
    loader = DataLoader(data, batch_size=batch_size, drop_last=True,
                        sampler=DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=0))
    engine.configure(len(loader))

    def step(batch: list[torch.Tensor], micro: int) -> dict[str, torch.Tensor]:
        x, y = batch
        with engine.autocast():
            loss = nn.functional.mse_loss(engine.forward(x).float(), y) * factor
        if engine.global_step in huge_at:
            loss = loss * 1e36
        return {"loss": loss * float("nan") if engine.global_step in nan_at else loss}

    engine.fit(loader, step, Hooks(epoch_end=lambda s: {"epoch": s.epoch + 1, "loss": sum(s.losses)}))
    assert model is engine.model
    return engine, grads


def test_accumulated_micro_batches_give_the_update_of_the_whole_batch(tmp_path):
    whole, whole_grads = _train(tmp_path, "b4", batch_size=4)
    split, split_grads = _train(tmp_path, "b2x2", batch_size=2, accum_steps=2)
    assert len(whole_grads) == 4 and len(split_grads) == 8
    # the gradient accumulated over an update's micro-batches is the whole batch's (loss / accum_steps)
    torch.testing.assert_close(split_grads[1::2], whole_grads, rtol=1e-5, atol=1e-6)
    assert whole.total_batch == split.total_batch == 4 and whole.lr == split.lr
    assert whole.global_step == split.global_step == 4  # 2 epochs of 8 samples / 4 per update
    torch.testing.assert_close(split.losses, whole.losses, rtol=1e-6, atol=1e-6)  # mean of micro-batch losses
    for a, b in zip(whole.model.parameters(), split.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(whole.model.fc.weight, _train(tmp_path, "one", batch_size=2)[0].model.fc.weight)


def test_a_non_finite_update_is_skipped_and_counted(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="maedfer.train.policy"):
        engine, _ = _train(tmp_path, "nan", batch_size=2, nan_at={1, 2}, max_nonfinite=3)
    assert engine.guard.skipped == 2 and engine.global_step == 8
    assert "non-finite loss at step 2: update skipped (2 in a row)" in caplog.text
    steps = {int(s["step"]) for s in engine.optimizer.state.values()}
    assert steps == {6}  # AdamW applied 8 - 2 updates
    assert all(torch.isfinite(p).all() for p in engine.model.parameters())
    history = json.loads((tmp_path / "nan" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]


def test_too_many_non_finite_updates_in_a_row_stop_the_run(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"^3 consecutive non-finite losses \(last at step 3\)"):
        _train(tmp_path, "nan", batch_size=2, nan_at={1, 2, 3}, max_nonfinite=3)


def test_total_batch_derives_the_accumulation_and_gives_the_same_run(tmp_path):
    split, _ = _train(tmp_path, "b2x2", batch_size=2, accum_steps=2)
    total, _ = _train(tmp_path, "total4", batch_size=2, total_batch=4)
    assert total.accum_steps == 2 and total.total_batch == 4 and total.lr == split.lr
    for a, b in zip(split.model.parameters(), total.model.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match=r"^total_batch 5 is not a multiple of batch_size 2 x 1 process\(es\) = 2; "):
        _train(tmp_path, "bad", batch_size=2, total_batch=5)
    assert not (tmp_path / "bad").exists()


def test_fp32_by_default_on_cpu_and_the_same_weights_when_named(tmp_path):
    default, _ = _train(tmp_path, "default", batch_size=2)
    named, _ = _train(tmp_path, "fp32", batch_size=2, precision="fp32")
    assert default.precision == named.precision == "fp32" and default.scaler is None
    for a, b in zip(default.model.parameters(), named.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_fp16_scales_the_gradients_and_counts_the_overflowed_updates(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="maedfer.train.policy"):
        # factor 1e-3: the gradients x 2 ** 16 (the initial scale) fit in float16 except at the huge losses
        engine, _ = _train(tmp_path, "fp16", batch_size=2, precision="fp16", huge_at={1, 2}, factor=1e-3)
    assert engine.precision == "fp16" and isinstance(engine.scaler, torch.amp.GradScaler)
    assert engine.guard.overflows == 2 and engine.guard.skipped == 0 and engine.global_step == 8
    assert engine.scaler.get_scale() == 2.0 ** 14  # 2 ** 16 halved by each overflow
    assert "fp16 gradient overflow at step 2: the scaler skipped the update and lowered its scale (2 in a row)" in (
        caplog.text)
    assert {int(s["step"]) for s in engine.optimizer.state.values()} == {6}  # 8 updates, 2 skipped by the scaler
    assert all(torch.isfinite(p).all() for p in engine.model.parameters())
    from maedfer.train.checkpoint import find_resume_checkpoint, read_training_state

    saved = read_training_state(find_resume_checkpoint(tmp_path / "fp16" / "checkpoints"))
    assert saved["scaler"]["scale"] == 2.0 ** 14  # the scaler is part of the training state
    with pytest.raises(NonFiniteLossError, match=r"^3 consecutive fp16 gradient overflows \(last at step 3\)"):
        _train(tmp_path, "stop", batch_size=2, precision="fp16", huge_at={1, 2, 3}, max_nonfinite=3, factor=1e-3)


def test_guard_resets_on_a_finite_loss():
    guard = NonFiniteGuard(max_in_a_row=2)
    nan, one = torch.tensor(float("nan")), torch.tensor(1.0)
    assert [guard.check(v, i) for i, v in enumerate([nan, one, torch.tensor(float("inf")), one])] == [
        False, True, False, True]
    assert guard.skipped == 2 and guard.in_a_row == 0
    with pytest.raises(ValueError, match="max_nonfinite must be >= 1"):
        NonFiniteGuard(0)


def test_autocast_policy_is_fp32_on_cpu():
    x = torch.randn(4, 4)
    with autocast(torch.device("cpu")):
        assert (x @ x).dtype == torch.float32 and not torch.is_autocast_enabled("cpu")


def test_named_precisions_on_cpu():
    x = torch.randn(4, 4)
    with autocast(torch.device("cpu"), "fp16"):
        assert (x @ x).dtype == torch.float16
    with autocast(torch.device("cpu"), "bf16"):
        assert (x @ x).dtype == torch.bfloat16
    assert resolve_precision(None, torch.device("cpu")) == "fp32"
    assert resolve_precision(None, torch.device("cuda")) == "bf16"
    with pytest.raises(ValueError, match="precision 'fp8' is not one of bf16, fp16, fp32"):
        resolve_precision("fp8", torch.device("cpu"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_autocast_policy_is_bf16_on_cuda():
    x = torch.randn(4, 4, device="cuda")
    with autocast(x.device):
        assert (x @ x).dtype == torch.bfloat16


# --- the two stages --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    return write_toy_index(tmp_path_factory.mktemp("engine_unlabelled"), labelled=False)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    return write_toy_index(tmp_path_factory.mktemp("engine_labelled"))


def _pretrain_cfg(**kw) -> PretrainConfig:
    base = dict(arch="pretrain_lgi_former_test", arch_kwargs=dict(**GEOM, mask_ratio=0.75), epochs=1,
                warmup_epochs=0, batch_size=2, num_workers=0, stride=2, preview_every_epochs=0)
    return PretrainConfig(**{**base, **kw})


def _finetune_cfg(**kw) -> FinetuneConfig:
    base = dict(arch="lgi_former_test", arch_kwargs=GEOM, epochs=1, warmup_epochs=0, batch_size=2, num_workers=0,
                stride=2)
    return FinetuneConfig(**{**base, **kw})


def test_warmup_longer_than_the_run_is_refused_first_with_one_message(tmp_path):
    missing = tmp_path / "missing.parquet"  # checked before the index is even read
    for run in (lambda: pretrain(_pretrain_cfg(warmup_epochs=3), missing, tmp_path / "pre"),
                lambda: finetune(_finetune_cfg(warmup_epochs=3), missing, 1, tmp_path / "ft"),
                lambda: check_warmup(3, 1)):
        with pytest.raises(ValueError) as err:
            run()
        assert str(err.value) == WARMUP_MESSAGE
    assert not (tmp_path / "pre").exists() and not (tmp_path / "ft").exists()


def test_pretraining_skips_and_counts_non_finite_updates(unlabelled, tmp_path, caplog):
    # lr 1e9: the first update is finite and blows the weights up; the three after it are NaN
    summary = pretrain(_pretrain_cfg(base_lr=1e9, max_nonfinite=10), unlabelled, tmp_path / "run")
    assert summary["skipped_steps"] == 3 and summary["global_step"] == 4
    assert "non-finite loss at step 3: update skipped (3 in a row)" in caplog.text
    assert load_model(tmp_path / "run" / "model.pt").extra["global_step"] == 4
    with pytest.raises(NonFiniteLossError, match="3 consecutive non-finite losses"):
        pretrain(_pretrain_cfg(base_lr=1e9, max_nonfinite=3), unlabelled, tmp_path / "stopped")


@pytest.mark.slow
def test_finetuning_stops_after_the_engines_limit_of_non_finite_updates(labelled, tmp_path, caplog):
    # 2 updates per epoch; from the second update on every loss is NaN: the 20th in a row (update 20) stops the run
    with pytest.raises(NonFiniteLossError, match=r"20 consecutive non-finite losses \(last at step 20\)"):
        finetune(_finetune_cfg(epochs=12, base_lr=1e12), labelled, 1, tmp_path / "run")
    assert "non-finite loss at step 1: update skipped (1 in a row)" in caplog.text
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history) == 10 and all(h["train/loss"] != h["train/loss"] for h in history[1:])  # NaN records
