"""The authors' checkpoints: key layout, conversion round trip and numerical equivalence."""

from __future__ import annotations

import argparse

import pytest
import torch
from einops import rearrange

from maedfer.constants import IMAGENET_MEAN, IMAGENET_STD
from maedfer.models import load_official_checkpoint
from maedfer.models.official import ConversionError, maedfer_to_official
from tests import official_reference as ref
from tests.helpers import TINY, read_official_keys

GRID = (4, 4, 4)


def _randomise(module: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(v.shape, generator=g) * 0.2 for k, v in module.state_dict().items()}
    for k in sd:
        if (
            k.endswith("norm0.weight")
            or k.endswith("norm1.weight")
            or k.endswith("norm2.weight")
            or k.endswith("norm.weight")
        ):
            sd[k] = 1.0 + sd[k]
    module.load_state_dict(sd)
    return sd


def _random_from_spec(spec: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {k: torch.randn(shape, generator=g) for k, shape in spec.items()}


@pytest.mark.parametrize("no_second,no_third", [(False, False), (True, True), (False, True), (True, False)])
@pytest.mark.parametrize("token_type", ["region", "org"])
def test_finetune_lgi_logits_match_reference(tiny_clip, no_second, no_third, token_type):
    official = ref.LGIFinetune(
        7, 64, 2, 2, GRID, (2, 2, 4), token_type=token_type, no_second=no_second, no_third=no_third
    ).eval()
    sd = _randomise(official)
    model = load_official_checkpoint(
        {"model": sd},
        region_size=(2, 2, 4),
        num_heads=2,
        model_kwargs=TINY,
        pool="region" if token_type == "region" else "local",
    ).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(tiny_clip), official(tiny_clip), rtol=1e-5, atol=1e-5)


def test_finetune_vit_logits_match_reference(tiny_clip):
    official = ref.ViTFinetune(7, 64, 2, 2, GRID).eval()
    sd = _randomise(official)
    model = load_official_checkpoint({"model": sd}, num_heads=2, model_kwargs=TINY).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(tiny_clip), official(tiny_clip), rtol=1e-5, atol=1e-5)


def test_pretrain_predictions_and_loss_match_reference(tiny_clip):
    official = ref.LGIPretrain(64, 2, 2, GRID, (2, 2, 4), dec_dim=32, dec_depth=1, dec_heads=2).eval()
    sd = _randomise(official)
    model = load_official_checkpoint(
        {"model": sd}, region_size=(2, 2, 4), num_heads=2, model_kwargs=dict(mask_ratio=0.75, decoder_heads=2, **TINY)
    ).eval()
    assert model.arch == "pretrain_lgi_former_base_patch16_160"
    assert model.token_order == "authors"
    mask = model.sample_mask(2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model(tiny_clip, mask)
        theirs = official(tiny_clip, mask)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(
            model.loss(tiny_clip, ours, mask)["loss"], ref.reference_loss(tiny_clip, mask, theirs), rtol=1e-5, atol=1e-6
        )
        for lam in (0.0, 0.3, 1.0):  # the authors' target_diff_weight is 1 - lambda
            model.appearance_weight = lam
            torch.testing.assert_close(
                model.loss(tiny_clip, ours, mask)["loss"],
                ref.reference_loss(tiny_clip, mask, theirs, diff_weight=1 - lam),
                rtol=1e-5,
                atol=1e-6,
            )


@pytest.mark.parametrize("name", ["finetune", "pretrain", "vit_b_joint_finetune"])
def test_reference_mirrors_official_key_layout(name):
    """The test reference has exactly the released key names and shapes (at full size)."""
    spec = read_official_keys(name)
    with torch.device("meta"):
        if name == "finetune":
            module = ref.LGIFinetune(7, 512, 16, 8, (8, 10, 10), (2, 5, 10))
        elif name == "pretrain":
            module = ref.LGIPretrain(512, 16, 8, (8, 10, 10), (2, 5, 10), 384, 4, 6)
        else:
            module = ref.ViTFinetune(7, 768, 12, 12, (8, 10, 10))
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == spec


@pytest.mark.parametrize(
    "name,arch,num_classes",
    [
        ("finetune", "lgi_former_base_patch16_160", 7),
        ("finetune", "lgi_former_base_patch16_160", 11),
        ("pretrain", "pretrain_lgi_former_base_patch16_160", 0),
        ("vit_b_joint_finetune", "vit_base_patch16_160", 7),
    ],
)
def test_official_layout_loads_with_no_missing_or_unexpected_keys(name, arch, num_classes):
    spec = read_official_keys(name)
    if num_classes == 11:
        spec = {**spec, "head.weight": (11, 512), "head.bias": (11,)}
    sd = _random_from_spec(spec)
    model = load_official_checkpoint({"model": sd, "epoch": 49})
    assert model.arch == arch
    if num_classes:
        assert model.num_classes == num_classes
    assert sum(p.numel() for p in model.parameters()) == sum(v.numel() for v in sd.values())
    # and back: the export reproduces every official tensor exactly
    kind = "pretrain" if name == "pretrain" else "finetune"
    back = maedfer_to_official(model.state_dict(), kind)
    assert set(back) == set(sd)
    assert all(torch.equal(back[k], sd[k]) for k in sd)


def test_conversion_errors_name_the_problem():
    spec = read_official_keys("finetune")
    sd = _random_from_spec(spec)
    del sd["blocks.3.mlp.fc1.bias"]
    with pytest.raises(ConversionError, match="missing"):
        load_official_checkpoint({"model": sd})
    sd = _random_from_spec(spec)
    sd["lg_region_tokens"] = torch.zeros(4, 512)
    with pytest.raises(ConversionError, match="region_size"):
        load_official_checkpoint({"model": sd})
    with pytest.raises(ConversionError, match="patch_embed"):
        load_official_checkpoint({"model": {"foo": torch.zeros(1)}})


def test_pretrain_equivalence_at_paper_geometry():
    """Region 2x5x10 on the 8x10x10 grid at 90% masking (narrow width to stay fast)."""
    official = ref.LGIPretrain(64, 1, 2, (8, 10, 10), (2, 5, 10), dec_dim=32, dec_depth=1, dec_heads=2).eval()
    sd = _randomise(official, seed=1)
    model = load_official_checkpoint({"model": sd}, num_heads=2, model_kwargs=dict(decoder_heads=2)).eval()
    clip = torch.randn(1, 3, 16, 160, 160, generator=torch.Generator().manual_seed(2))
    mask = model.sample_mask(1, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours, theirs = model(clip, mask), official(clip, mask)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(
            model.loss(clip, ours, mask)["loss"], ref.reference_loss(clip, mask, theirs), rtol=1e-5, atol=1e-6
        )
        model.token_order = "raster"  # the corrected order really changes the predictions
        assert (model(clip, mask) - theirs).abs().max() > 1e-4


def test_decoder_heads_of_an_unknown_width_must_be_given():
    """A 48-d decoder is not guessed (it was 1 head): the error names the option; given, it is used."""
    official = ref.LGIPretrain(64, 1, 2, GRID, (2, 2, 4), dec_dim=48, dec_depth=1, dec_heads=4).eval()
    sd = _randomise(official)
    kw = dict(region_size=(2, 2, 4), num_heads=2, model_kwargs=dict(mask_ratio=0.75, **TINY))
    with pytest.raises(ConversionError, match="decoder width 48.*decoder_heads \\(CLI: --decoder-heads N\\)"):
        load_official_checkpoint({"model": sd}, **kw)
    with pytest.raises(ConversionError, match="not divisible by 5"):
        load_official_checkpoint({"model": sd}, decoder_heads=5, **kw)
    model = load_official_checkpoint({"model": sd}, decoder_heads=4, **kw).eval()
    assert model.arch_kwargs["decoder_heads"] == 4 and model.decoder.blocks[0].attn.num_heads == 4
    mask = model.sample_mask(2, generator=torch.Generator().manual_seed(0))
    clip = torch.randn(2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(clip, mask), official(clip, mask), rtol=1e-5, atol=1e-5)


def _videomae_reference_loss(videos, mask, outputs, patch=16):
    """The original VideoMAE loss (use_frame_diff_as_target off): MSE on the whole normalised tubelet."""
    mean = torch.tensor(IMAGENET_MEAN)[None, :, None, None, None]
    std = torch.tensor(IMAGENET_STD)[None, :, None, None, None]
    sq = rearrange(videos * std + mean, "b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2) c", p0=2, p1=patch, p2=patch)
    normed = (sq - sq.mean(dim=-2, keepdim=True)) / (sq.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6)
    labels = rearrange(normed, "b n p c -> b n (p c)")
    return torch.nn.functional.mse_loss(outputs, labels[mask].reshape(outputs.shape[0], -1, labels.shape[-1]))


def test_pretrain_target_follows_the_saved_args(tiny_clip):
    """Same shapes for both targets: the authors' saved args pick VideoMAE's or Eq. 2's lambda; target= overrides."""
    official = ref.LGIPretrain(64, 2, 2, GRID, (2, 2, 4), dec_dim=32, dec_depth=1, dec_heads=2).eval()
    sd = _randomise(official)
    kw = dict(region_size=(2, 2, 4), num_heads=2, model_kwargs=dict(mask_ratio=0.75, decoder_heads=2, **TINY))
    videomae_args = argparse.Namespace(use_frame_diff_as_target=False, target_diff_weight=None)
    model = load_official_checkpoint({"model": sd, "args": videomae_args}, **kw).eval()
    assert model.target == "videomae" and "appearance_weight" not in model.arch_kwargs
    mask = model.sample_mask(2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model(tiny_clip, mask), official(tiny_clip, mask)
        torch.testing.assert_close(
            model.loss(tiny_clip, ours, mask)["loss"], _videomae_reference_loss(tiny_clip, mask, theirs),
            rtol=1e-5, atol=1e-6,
        )
    joint_args = argparse.Namespace(use_frame_diff_as_target=True, target_diff_weight=0.25)
    model = load_official_checkpoint({"model": sd, "args": joint_args}, **kw)
    assert (model.target, model.appearance_weight) == ("mae_dfer", 0.75)
    assert load_official_checkpoint({"model": sd}, **kw).target == "mae_dfer"  # nothing saved: the default
    original_videomae_args = argparse.Namespace(normlize_target=True)  # the original VideoMAE code's args
    assert load_official_checkpoint({"model": sd, "args": original_videomae_args}, **kw).target == "videomae"
    assert load_official_checkpoint({"model": sd, "args": joint_args}, target="videomae", **kw).target == "videomae"
    with pytest.raises(ConversionError, match="target must be one of"):
        load_official_checkpoint({"model": sd}, target="pixels", **kw)
    bad = {**sd, "decoder.head.weight": sd["decoder.head.weight"][:768]}
    bad["decoder.head.bias"] = sd["decoder.head.bias"][:768]
    with pytest.raises(ConversionError, match="predicts 768 values per cube"):
        load_official_checkpoint({"model": bad}, **kw)
