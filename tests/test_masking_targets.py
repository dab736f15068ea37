"""Tube-window masking, reconstruction targets, the loss weighting and the pre-training model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from einops import rearrange

from maedfer.constants import IMAGENET_MEAN, IMAGENET_STD
from maedfer.masking import TubeWindowMaskGenerator
from maedfer.models import MaskLayoutError, create_model
from maedfer.models.targets import cube_targets, weighted_mse
from tests.helpers import TINY


def test_paper_mask_visible_counts():
    gen = TubeWindowMaskGenerator((8, 10, 10), (5, 10), 0.9)
    mask = gen(4, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (4, 800) and mask.dtype == torch.bool
    assert gen.num_visible == 80
    grid = rearrange(mask, "b (t h w) -> b t h w", t=8, h=10, w=10)
    for b in range(4):
        for t in range(8):
            torch.testing.assert_close(grid[b, t], grid[b, 0])  # same patches in every slot
        assert (~grid[b, 0, :5]).sum() == 5 and (~grid[b, 0, 5:]).sum() == 5  # 5 visible per window
    assert not torch.equal(grid[0, 0], grid[1, 0])  # samples differ


@pytest.mark.parametrize("ratio,visible", [(0.75, 13), (0.9, 5), (0.5, 25)])
def test_ratio_rounding_matches_authors(ratio, visible):
    assert TubeWindowMaskGenerator((8, 10, 10), (5, 10), ratio).num_visible_per_window == visible


def test_mask_generator_matches_reference_distribution_shape():
    from tests.official_reference import reference_tube_window_mask

    ref = reference_tube_window_mask((8, 10, 10), (5, 10), 0.9, np.random.default_rng(0))
    ours = TubeWindowMaskGenerator((8, 10, 10), (5, 10), 0.9)(1)[0].numpy()
    assert ref.shape == ours.shape and ref.sum() == ours.sum() == 720


def test_generator_and_encoder_agree_by_construction(tiny_clip):
    model = create_model("pretrain_lgi_former_test", region_size=(2, 2, 4), mask_ratio=0.75, **TINY)
    mask = model.sample_mask(2, generator=torch.Generator().manual_seed(1))
    out = model.encoder(tiny_clip, mask)
    # 4 regions x (2 slots x 2 visible of 8 per window)
    assert out.tokens.shape == (2, 4 * 4, 64)
    assert (~mask).sum(1).tolist() == [16, 16]
    assert torch.equal(out.positions.sort(1).values, torch.nonzero(~mask)[:, 1].reshape(2, -1))


def test_mismatched_mask_is_an_error(tiny_clip):
    model = create_model("pretrain_lgi_former_test", region_size=(2, 2, 4), **TINY)
    mask = torch.ones(2, 64, dtype=torch.bool)
    mask[:, :16] = False  # all visible tokens in the first slot pair's first band
    with pytest.raises(MaskLayoutError, match="same number"):
        model(tiny_clip, mask)


def test_window_must_tile():
    with pytest.raises(ValueError, match="does not tile"):
        TubeWindowMaskGenerator((8, 10, 10), (3, 10), 0.9)
    with pytest.raises(ValueError, match="mask ratio"):
        TubeWindowMaskGenerator((8, 10, 10), (5, 10), 1.0)


def test_targets_by_hand():
    """One 2x2x2 clip, patch 2: the single cube's target computed by hand."""
    rng = np.random.default_rng(0)
    pixels = rng.random((3, 2, 2, 2))  # (C, T, H, W) in [0, 1]
    mean = np.array(IMAGENET_MEAN)[:, None, None, None]
    std = np.array(IMAGENET_STD)[:, None, None, None]
    video = torch.tensor((pixels - mean) / std, dtype=torch.float32)[None]
    target = cube_targets(video, patch_size=2)[0, 0].numpy()  # (24,)
    norm = np.empty_like(pixels)
    for c in range(3):
        v = pixels[c]
        norm[c] = (v - v.mean()) / (v.std(ddof=1) + 1e-6)
    appearance = norm[:, 0].transpose(1, 2, 0).reshape(-1)  # (py, px, c)
    motion = (norm[:, 1] - norm[:, 0]).transpose(1, 2, 0).reshape(-1)
    np.testing.assert_allclose(target, np.concatenate([appearance, motion]), rtol=1e-4, atol=1e-4)


def test_lambda_weighting():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 5, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    half = weighted_mse(pred, target, 0.5)
    torch.testing.assert_close(half["loss"], torch.nn.functional.mse_loss(pred, target))
    app = weighted_mse(pred, target, 1.0)
    torch.testing.assert_close(app["loss"], torch.nn.functional.mse_loss(pred[..., :4], target[..., :4]))
    mot = weighted_mse(pred, target, 0.0)
    torch.testing.assert_close(mot["loss"], torch.nn.functional.mse_loss(pred[..., 4:], target[..., 4:]))
    w = weighted_mse(pred, target, 0.3)
    torch.testing.assert_close(w["loss"], 0.3 * app["loss"] + 0.7 * mot["loss"])


@pytest.mark.parametrize("arch", ["pretrain_lgi_former_test", "pretrain_vit_test"])
def test_pretrain_forward_and_backward(tiny_clip, arch):
    kw = dict(region_size=(2, 2, 4)) if "lgi" in arch else {}
    model = create_model(arch, mask_ratio=0.75, **kw, **TINY)
    out = model.forward_loss(tiny_clip, generator=torch.Generator().manual_seed(0))
    n_masked = int(out["mask"][0].sum())
    assert out["pred"].shape == (2, n_masked, 2 * 16 * 16 * 3)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_token_order_switch(tiny_clip):
    """Authors' order differs from raster order when regions span two slots, and equals it with 1-slot regions."""

    def preds(region, order):
        torch.manual_seed(0)
        m = create_model(
            "pretrain_lgi_former_test", region_size=region, token_order=order, mask_ratio=0.75, **TINY
        ).eval()
        mask = m.sample_mask(2, generator=torch.Generator().manual_seed(0))
        return m(tiny_clip, mask)

    assert not torch.allclose(preds((2, 2, 4), "authors"), preds((2, 2, 4), "raster"))
    torch.testing.assert_close(preds((1, 2, 4), "authors"), preds((1, 2, 4), "raster"))


def _videomae_reference_targets(video: torch.Tensor, patch: int, tubelet: int = 2) -> torch.Tensor:
    """VideoMAE's normlize_target, written out independently: (B, L, tubelet*patch*patch*3)."""
    mean = torch.tensor(IMAGENET_MEAN)[None, :, None, None, None]
    std = torch.tensor(IMAGENET_STD)[None, :, None, None, None]
    pixels = video * std + mean
    cubes = rearrange(pixels, "b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2) c", p0=tubelet, p1=patch, p2=patch)
    normed = (cubes - cubes.mean(dim=-2, keepdim=True)) / (cubes.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6)
    return rearrange(normed, "b n p c -> b n (p c)")  # per cube: (p0 p1 p2 c) = frame, row, column, channel


def test_videomae_target_is_the_whole_normalised_tubelet():
    """The original VideoMAE target against an independent computation, and its value order checked by hand."""
    from maedfer.models.targets import masked_targets, videomae_cube_targets

    video = torch.randn(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    ours = videomae_cube_targets(video, patch_size=4)
    assert ours.shape == (2, 2 * 2 * 2, 2 * 4 * 4 * 3)
    torch.testing.assert_close(ours, _videomae_reference_targets(video, 4), rtol=1e-5, atol=1e-5)
    # value order within a cube: frame, row, column, channel (cube 0 of clip 0 by hand)
    pixels = (video[0].numpy() * np.array(IMAGENET_STD)[:, None, None, None]
              + np.array(IMAGENET_MEAN)[:, None, None, None])[:, :2, :4, :4]  # (C, 2, 4, 4)
    norm = np.stack([(v - v.mean()) / (v.std(ddof=1) + 1e-6) for v in pixels])
    np.testing.assert_allclose(ours[0, 0].numpy(), norm.transpose(1, 2, 3, 0).reshape(-1), rtol=1e-4, atol=1e-4)
    # the mae_dfer target shares its first half (appearance) and differs in the second (motion)
    joint = cube_targets(video, patch_size=4)
    torch.testing.assert_close(joint[..., :48], ours[..., :48])
    torch.testing.assert_close(joint[..., 48:], ours[..., 48:] - ours[..., :48])
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[:, [1, 6]] = True
    torch.testing.assert_close(masked_targets(video, mask, 4, target="videomae"), ours[:, [1, 6]])


def test_videomae_loss_is_plain_mse_and_differs_from_first_frame_only(tiny_clip):
    """Same weights and mask: the VideoMAE loss (both frames) against the independent formula, and != lambda 1."""
    torch.manual_seed(0)
    videomae = create_model("pretrain_vit_test", target="videomae", mask_ratio=0.75, **TINY).eval()
    first_frame = create_model("pretrain_vit_test", appearance_weight=1.0, mask_ratio=0.75, **TINY).eval()
    first_frame.load_state_dict(videomae.state_dict())
    assert videomae.decoder.head.out_features == 2 * 16 * 16 * 3 == first_frame.decoder.head.out_features
    mask = videomae.sample_mask(2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pred = videomae(tiny_clip, mask)
        torch.testing.assert_close(pred, first_frame(tiny_clip, mask))
        labels = _videomae_reference_targets(tiny_clip, 16)[mask].reshape(2, -1, 1536)
        loss = videomae.loss(tiny_clip, pred, mask)["loss"]
        torch.testing.assert_close(loss, torch.nn.functional.mse_loss(pred, labels))
        first = first_frame.loss(tiny_clip, pred, mask)["loss"]
        torch.testing.assert_close(first, torch.nn.functional.mse_loss(pred[..., :768], labels[..., :768]))
        assert abs(loss.item() - first.item()) > 1e-3
    out = videomae.train().forward_loss(tiny_clip, generator=torch.Generator().manual_seed(1))
    out["loss"].backward()
    assert [n for n, p in videomae.named_parameters() if p.grad is None] == []


def test_target_argument_checks():
    with pytest.raises(ValueError, match="appearance_weight .* drop appearance_weight"):
        create_model("pretrain_vit_test", target="videomae", appearance_weight=1.0, **TINY)
    with pytest.raises(ValueError, match="target must be one of mae_dfer, videomae"):
        create_model("pretrain_vit_test", target="pixels", **TINY)
    assert create_model("pretrain_vit_test", **TINY).appearance_weight == 0.5  # default unchanged
    m = create_model("pretrain_vit_test", target="videomae", **TINY)
    assert m.arch_kwargs["target"] == "videomae" and m.appearance_weight is None
    from maedfer.settings.arch_names import classifier_kwargs

    assert "target" not in classifier_kwargs(m.arch_kwargs)  # the fine-tuned classifier does not take it
    pred = torch.randn(1, 3, 24)
    joint = m.as_appearance_motion(pred)
    torch.testing.assert_close(joint[..., 12:], pred[..., 12:] - pred[..., :12])
