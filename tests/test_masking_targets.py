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
