"""The paper profile's recipe, step by step, against the authors' runs, whatever the GPU count.

The authors fine-tune DFEW with 3 processes x 32 clips (their log: "LR = 0.00037500", "Batch size = 96",
"Number of training training per epoch = 97" for fold 1's 9,356 clips, "Set warmup steps = 485") and
FERV39k with 3 x 40 (LR 4.6875e-4, 259 updates per epoch on 31,088 clips). Their schedule is VideoMAE's
``cosine_scheduler``, re-derived here from its definition: ``np.linspace(0, peak, warmup)`` then
``final + (peak - final) * (1 + cos(pi * i / n)) / 2`` over the remaining ``n`` updates.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from maedfer.data.datasets import make_loader
from maedfer.models import create_model
from maedfer.settings.resolve import recipe_problems
from maedfer.train.optim import build_optimizer
from maedfer.train.recipe import Recipe, accumulation, plan_updates
from maedfer.workflow.profile import ParamsError, load_profile
from tests.test_settings import ROOT

DFEW_FOLD1_TRAIN = 9356  # DATASETS.md; the authors' split01/train.csv
FERV39K_TRAIN = 31088


@pytest.fixture(scope="module")
def paper():
    return load_profile(ROOT / "params.yaml")


def _authors_schedule(peak: float, final: float, epochs: int, per_epoch: int, warmup_epochs: int) -> np.ndarray:
    warm = warmup_epochs * per_epoch
    rest = np.arange(epochs * per_epoch - warm)
    cosine = final + 0.5 * (peak - final) * (1 + np.cos(np.pi * rest / len(rest)))
    return np.concatenate([np.linspace(0, peak, warm), cosine])


def _loader_length(train_clips: int, batch_size: int, gpus: int) -> int:
    """Micro-batches per epoch of one process, from the stage's own loader (padded sampler, drop_last)."""
    return len(make_loader(range(train_clips), batch_size, shuffle=True, drop_last=True, num_replicas=gpus, rank=0))


def _finetune_plan(cfg, gpus: int, train_clips: int):
    recipe = Recipe.of(cfg, betas=(0.9, 0.999))  # as maedfer.train.finetune_loop builds it
    return recipe, plan_updates(recipe, gpus, _loader_length(train_clips, cfg.batch_size, gpus), train_clips)


@pytest.mark.parametrize("dataset, clips, batch, total, per_epoch, peak", [
    ("dfew", DFEW_FOLD1_TRAIN, 32, 96, 97, 3.75e-4),
    ("mafw", DFEW_FOLD1_TRAIN, 32, 96, 97, 3.75e-4),  # MAFW: the DFEW recipe (the authors' MAFW script)
    ("cremad", DFEW_FOLD1_TRAIN, 32, 96, 97, 3.75e-4),  # no public script: the DFEW recipe
    ("ferv39k", FERV39K_TRAIN, 40, 120, 259, 4.6875e-4),
])
def test_paper_finetune_batches_are_the_authors_on_one_or_three_gpus(paper, dataset, clips, batch, total, per_epoch,
                                                                      peak):
    cfg = paper.finetune_config("mae_dfer", dataset)
    assert (cfg.total_batch, cfg.batch_size, cfg.precision) == (total, batch, "fp16")
    for gpus, accum in ((1, 3), (3, 1)):
        _, plan = _finetune_plan(cfg, gpus, clips)
        assert (plan.accum_steps, plan.total_batch, plan.steps_per_epoch) == (accum, total, per_epoch)
        assert plan.warmup_steps == 5 * per_epoch and plan.total_steps == 100 * per_epoch
        assert plan.lr == pytest.approx(peak, rel=1e-12) and plan.min_lr == pytest.approx(1e-6 * total / 256)


def test_paper_dfew_fold_gives_the_authors_lr_and_weight_decay_step_by_step(paper):
    """The optimiser of the paper's model, driven by the schedule the engine builds, on 1 GPU (3 micro-batches
    per update) and on 3 GPUs: every update's lr per group and weight decay are the authors'."""
    cfg = paper.finetune_config("mae_dfer", "dfew")
    expected = _authors_schedule(3.75e-4, 1e-6 * 96 / 256, 100, 97, 5)
    assert len(expected) == 9700 and expected[484] == pytest.approx(3.75e-4) and expected[0] == 0.0
    torch.manual_seed(0)
    model = create_model(cfg.arch, num_classes=7, **cfg.arch_kwargs)
    seen = []
    for gpus in (1, 3):
        recipe, plan = _finetune_plan(cfg, gpus, DFEW_FOLD1_TRAIN)
        optimizer = build_optimizer(model, plan.lr, recipe.weight_decay, betas=recipe.betas,
                                    layer_decay=recipe.layer_decay)
        schedule = plan.schedule(optimizer)
        groups = optimizer.param_groups
        decays = {g["group_name"]: g["weight_decay"] for g in groups}
        assert set(decays.values()) == {0.0, 0.05}
        assert all((v == 0.0) == k.endswith("no_decay") for k, v in decays.items())
        names = {n: g["weight_decay"] for g in groups for n in g["param_names"]}
        assert names["encoder.region_tokens"] == 0.0 and names["head.weight"] == 0.05 and names["head.bias"] == 0.0
        scales = {g["layer_id"]: g["lr_scale"] for g in groups}
        assert scales[0] == pytest.approx(0.75 ** 17) and scales[max(scales)] == 1.0
        lrs = []
        for step in range(len(expected)):
            lr = schedule.step()
            lrs.append(lr)
            if step in (0, 1, 483, 484, 485, 486, 970, 4850, 9698, 9699):
                for g in groups:
                    assert g["lr"] == pytest.approx(expected[step] * g["lr_scale"], rel=1e-9, abs=1e-18)
        np.testing.assert_allclose(lrs, expected, rtol=1e-12, atol=1e-20)
        seen.append((lrs, decays))
    assert seen[0] == seen[1]  # one GPU with accumulation and three GPUs: the same updates


def test_paper_pretraining_stops_after_epoch_50_of_a_100_epoch_cosine(paper):
    cfg = paper.pretrain_config("mae_dfer")
    assert (cfg.epochs, cfg.schedule_epochs, cfg.total_batch, cfg.decay_region_tokens) == (50, 100, 160, True)
    clips = 160 * 700 + 37  # any pre-training set: 700 updates per epoch
    for gpus, accum in ((4, 1), (1, 4), (2, 2)):
        recipe = Recipe.of(cfg)
        plan = plan_updates(recipe, gpus, _loader_length(clips, cfg.batch_size, gpus), clips)
        assert (plan.accum_steps, plan.total_batch, plan.steps_per_epoch) == (accum, 160, 700)
        assert plan.lr == pytest.approx(1.875e-4, rel=1e-12)  # the released log's peak lr
        assert (plan.total_steps, plan.warmup_steps) == (100 * 700, 5 * 700)
        schedule = plan.schedule(torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))]))
        lrs = [schedule.step() for _ in range(cfg.epochs * plan.steps_per_epoch)]  # what the run trains
        expected = _authors_schedule(plan.lr, 1e-5 * 160 / 256, 100, 700, 5)
        np.testing.assert_allclose(lrs, expected[: 50 * 700], rtol=1e-12)
        assert lrs[-1] == pytest.approx(expected[50 * 700 - 1], rel=1e-12)  # the end of epoch 50 of the 100-epoch run
        assert lrs[-1] / plan.lr == pytest.approx(0.557, abs=5e-4)
    fifty = plan_updates(Recipe.of(cfg, schedule_epochs=None), 4, 700, clips)
    last = fifty.schedule(torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])).lr_at(50 * 700 - 1)
    assert last / fifty.lr == pytest.approx(0.033, abs=5e-4)  # a 50-epoch cosine would end near its minimum


def test_paper_params_have_no_total_batch_the_gpus_cannot_split(paper, tmp_path):
    assert recipe_problems(paper.params) == []
    demo = load_profile(ROOT / "params/demo.yaml")
    assert recipe_problems(demo.params) == []
    text = (ROOT / "params.yaml").read_text().replace("resources: {gpus: 1, cpus: 12", "resources: {gpus: 2, cpus: 12")
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ParamsError) as err:  # found when the params file loads, before any job starts
        load_profile(tmp_path / "p.yaml")
    assert str(err.value).startswith(
        f"{tmp_path / 'p.yaml'}: finetune.experiments.mae_dfer on datasets.dfew: total_batch 96 is not a multiple of "
        "batch_size 32 x 2 GPU(s) (resources.gpus); change total_batch, batch_size or gpus")


def test_total_batch_derives_the_accumulation_or_names_the_key():
    assert accumulation(None, 32, 2, 3) == 2  # without total_batch: accum_steps, as before
    assert accumulation(96, 32, 1, 1) == 3 and accumulation(96, 32, 3, 1) == 3 and accumulation(96, 32, 1, 3) == 1
    with pytest.raises(ValueError, match=r"^total_batch 96 is not a multiple of batch_size 32 x 2 process\(es\) = 64"):
        accumulation(96, 32, 1, 2)
    with pytest.raises(ValueError, match=r"^accum_steps 2 contradicts total_batch 96 .* set total_batch or accum"):
        accumulation(96, 32, 2, 1)
    recipe = Recipe(epochs=2, warmup_epochs=0, batch_size=4, base_lr=1.0, base_min_lr=0.0, weight_decay=0.0,
                    total_batch=8)
    with pytest.raises(ValueError, match="make no update of 8 clips"):
        plan_updates(recipe, 1, 1)
    with pytest.raises(ValueError, match=r"^schedule_epochs \(1\) is less than epochs \(2\)"):
        plan_updates(Recipe(**{**recipe.__dict__, "schedule_epochs": 1}), 1, 8)
    # without total_batch and on one process the plan is what the engine always did
    plain = plan_updates(Recipe(**{**recipe.__dict__, "total_batch": None, "accum_steps": 2}), 1, 9, 36)
    assert (plain.accum_steps, plain.total_batch, plain.steps_per_epoch, plain.total_steps) == (2, 8, 4, 8)
    assert plain.lr == 8 / 256 and not math.isnan(plain.min_lr)
