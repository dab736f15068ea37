"""Clip transforms, RandAugment, Mixup/CutMix and the soft-target loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from maedfer.constants import IMAGENET_MEAN, IMAGENET_STD
from maedfer.data.mixup import Mixup, SoftTargetCrossEntropy, mixup_target, one_hot_smoothed
from maedfer.data.rand_augment import OPS, RAND_INCREASING_TRANSFORMS, DrawnOp, RandAugment
from maedfer.data.sampling import derive_rng
from maedfer.data.transforms import (
    CenterCrop,
    GroupMultiScaleCrop,
    Normalize,
    RandomErasing,
    RandomHorizontalFlip,
    RandomResizedCrop,
    ResizeShortSide,
    eval_transform,
    finetune_train_transform,
    pretrain_transform,
    random_resized_crop_params,
)


def natural_frame(h: int = 48, w: int = 48, seed: int = 0) -> torch.Tensor:
    """A uint8 (3, h, w) frame with structure (gradients, a blob, noise): every op changes it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    blob = 120 * np.exp(-(((x - w * 0.6) ** 2 + (y - h * 0.4) ** 2) / (0.05 * h * w)))
    img = np.stack([x * 200 / w + blob, y * 180 / h + 30, (x + y) * 90 / (h + w) + blob / 2], 0)
    img = img + rng.normal(0, 12, img.shape)
    return torch.from_numpy(np.clip(img, 0, 255).astype(np.uint8))


def repeated_clip(t: int = 16, h: int = 48, w: int = 48) -> torch.Tensor:
    return natural_frame(h, w).unsqueeze(0).repeat(t, 1, 1, 1)  # (T, 3, H, W)


def frames_identical(video: torch.Tensor, time_dim: int) -> bool:
    first = video.select(time_dim, 0).unsqueeze(time_dim)
    return bool(torch.equal(video, first.expand_as(video)))


# ----------------------------------------------------------------------------------------------
# RandAugment


def test_randaugment_config_parsing():
    ra = RandAugment.from_config("rand-m7-n4-mstd0.5-inc1")
    assert (ra.magnitude, ra.num_layers, ra.magnitude_std, ra.prob) == (7.0, 4, 0.5, 0.5)
    assert ra.names == RAND_INCREASING_TRANSFORMS and len(ra.names) == 15
    assert RandAugment.from_config("rand-m9-n2").names != RAND_INCREASING_TRANSFORMS
    for bad in ["auto-m7", "rand-x3", "rand-m7-w0"]:
        with pytest.raises(ValueError):
            RandAugment.from_config(bad)


def test_randaugment_draws_follow_timm_semantics():
    ra = RandAugment.from_config("rand-m7-n4-mstd0.5-inc1")
    counts = []
    for seed in range(400):
        ops = ra.sample(derive_rng(seed))
        counts.append(len(ops))
        for op in ops:
            if op.name == "Rotate":
                assert 0 <= abs(op.args[0]) <= 30
            if op.name in ("ShearX", "ShearY"):
                assert abs(op.args[0]) <= 0.3
            if op.name.endswith("Increasing") and op.name.startswith(("Color", "Contrast", "Bright", "Sharp")):
                assert 0.1 <= op.args[0] <= 1.9
    assert set(counts) <= {0, 1, 2, 3, 4}
    assert abs(np.mean(counts) - 2.0) < 0.25  # 4 ops, each kept with probability 0.5
    # magnitude exactly 7 without noise: SolarizeIncreasing threshold 256 - int(0.7 * 256) = 77
    exact = RandAugment(magnitude=7, num_layers=1, increasing=True, prob=1.0)
    assert OPS["SolarizeIncreasing"].level_to_args(7.0, derive_rng(0)) == (77,)
    assert OPS["PosterizeIncreasing"].level_to_args(7.0, derive_rng(0)) == (2,)
    for seed in range(50):
        (op,) = exact.sample(derive_rng(seed))
        assert op.name in RAND_INCREASING_TRANSFORMS


@pytest.mark.parametrize("name", RAND_INCREASING_TRANSFORMS)
def test_each_op_same_on_every_frame(name):
    clip = repeated_clip(4)
    ra = RandAugment(magnitude=7, increasing=True)
    args = OPS[name].level_to_args(7.0, derive_rng(1))
    frames = ra.apply([Image.fromarray(f.permute(1, 2, 0).numpy()) for f in clip], [DrawnOp(name, args)])
    arrays = [np.asarray(f) for f in frames]
    assert all(a.shape == (48, 48, 3) and a.dtype == np.uint8 for a in arrays)
    assert all(np.array_equal(arrays[0], a) for a in arrays[1:])
    assert not np.array_equal(arrays[0], clip[0].permute(1, 2, 0).numpy())  # the op did something


def test_randaugment_on_tensor_clip():
    clip = repeated_clip()
    ra = RandAugment(magnitude=9, num_layers=4, increasing=True, prob=1.0)
    for seed in range(5):
        out = ra(clip, derive_rng(seed))
        assert out.shape == clip.shape and out.dtype == torch.uint8
        assert frames_identical(out, 0)
        assert torch.equal(out, ra(clip, derive_rng(seed)))  # deterministic given the generator
    with pytest.raises(TypeError):
        ra(clip.float(), derive_rng(0))


# ----------------------------------------------------------------------------------------------
# Spatial transforms


def test_pipelines_shape_dtype_and_identical_frames():
    clip = repeated_clip(16, 56, 72)  # non-square, not at the output size
    train = finetune_train_transform(size=32, reprob=0.0)
    for seed in range(20):
        out = train(clip, derive_rng(seed))
        assert out.shape == (3, 16, 32, 32) and out.dtype == torch.float32
        assert frames_identical(out, 1)
        assert torch.equal(out, train(clip, derive_rng(seed)))
    for transform in (eval_transform(32), pretrain_transform(32)):
        out = transform(clip, derive_rng(0))
        assert out.shape == (3, 16, 32, 32) and out.dtype == torch.float32
        assert frames_identical(out, 1)
    # the full default pipeline (with erasing) at 160
    out = finetune_train_transform()(repeated_clip(16, 160, 160), derive_rng(3))
    assert out.shape == (3, 16, 160, 160) and out.dtype == torch.float32 and out.is_contiguous()


def test_train_pipeline_varies_with_seed():
    clip = repeated_clip(4)
    train = finetune_train_transform(size=32)
    outs = [train(clip, derive_rng(s)) for s in range(6)]
    assert all(not torch.equal(outs[0], o) for o in outs[1:])


def test_eval_transform_is_resize_short_side_then_centre_crop():
    clip = torch.arange(2 * 3 * 40 * 60, dtype=torch.float32).reshape(2, 3, 40, 60) % 251
    clip = clip.to(torch.uint8)
    out = eval_transform(40)(clip, derive_rng(0))  # short side already 40: only a centre crop of width 40
    expected = Normalize()(clip[..., 10:50], None).permute(1, 0, 2, 3)
    torch.testing.assert_close(out, expected)
    assert ResizeShortSide(20)(clip).shape[-2:] == (20, 30)
    assert ResizeShortSide(20)(clip.transpose(-1, -2)).shape[-2:] == (30, 20)
    with pytest.raises(ValueError, match="resize it first"):
        CenterCrop(50)(clip)


def test_normalize_statistics():
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    clip = (mean * 255).round().to(torch.uint8).expand(4, 3, 8, 8)
    assert Normalize()(clip).abs().max() < 0.01
    x = torch.rand(4, 3, 8, 8)
    torch.testing.assert_close(Normalize()(x), (x - mean) / std)
    assert Normalize()((x * 255).to(torch.uint8)).dtype == torch.float32


def test_random_resized_crop_params_ranges():
    for seed in range(300):
        top, left, h, w = random_resized_crop_params(160, 160, derive_rng(seed))
        assert 0 <= top and top + h <= 160 and 0 <= left and left + w <= 160
        assert 0.08 * 160 * 160 * 0.9 <= h * w <= 160 * 160
    # impossible ratio constraints fall back to the centre crop clamped to the ratio
    assert random_resized_crop_params(10, 100, derive_rng(0), scale=(1.0, 1.0), ratio=(1.0, 1.0)) == (0, 45, 10, 10)


def test_random_resized_crop_and_flip_identical_frames():
    clip = Normalize()(repeated_clip(8))
    rrc, flip = RandomResizedCrop(24), RandomHorizontalFlip(1.0)
    out = rrc(clip, derive_rng(0))
    assert out.shape == (8, 3, 24, 24) and out.dtype == torch.float32 and frames_identical(out, 0)
    assert torch.equal(flip(out, derive_rng(0)), out.flip(-1))
    assert torch.equal(RandomHorizontalFlip(0.0)(out, derive_rng(0)), out)


def test_random_erasing_same_box_every_frame():
    clip = Normalize()(repeated_clip(8))
    erase = RandomErasing(probability=1.0, mode="pixel")
    for seed in range(10):
        out = erase(clip, derive_rng(seed))
        changed = (out != clip).any(dim=1)  # (T, H, W)
        assert changed.any()
        assert frames_identical(changed, 0)  # the same box in every frame
        rows, cols = changed[0].any(1).nonzero(), changed[0].any(0).nonzero()
        area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert 0.02 * 48 * 48 * 0.7 <= area <= 48 * 48 / 3 * 1.3
        assert not frames_identical(out, 0)  # fresh noise per frame, as the authors'
        assert torch.equal(out, erase(clip, derive_rng(seed)))
    shared = RandomErasing(probability=1.0, mode="pixel", same_noise=True)(clip, derive_rng(0))
    assert frames_identical(shared, 0) and not torch.equal(shared, clip)
    assert torch.equal(RandomErasing(probability=0.0)(clip, derive_rng(0)), clip)
    const = RandomErasing(probability=1.0, mode="const")(clip, derive_rng(0))
    assert frames_identical(const, 0) and (const == 0).any()
    with pytest.raises(TypeError):
        erase(repeated_clip(2), derive_rng(0))
    hits = sum(bool((RandomErasing(0.25)(clip, derive_rng(s)) != clip).any()) for s in range(400))
    assert 60 < hits < 140  # p = 0.25


def test_multiscale_crop_params_follow_videomae():
    crop = GroupMultiScaleCrop(160)
    seen = set()
    for seed in range(500):
        cw, ch, ow, oh = crop.params(160, 160, derive_rng(seed))
        sizes = [160, 140, 120, 105]
        assert cw in sizes and ch in sizes and abs(sizes.index(cw) - sizes.index(ch)) <= 1
        step_w, step_h = (160 - cw) // 4, (160 - ch) // 4
        assert (step_w == 0 and ow == 0) or (ow % step_w == 0 and ow // step_w <= 4)
        assert (step_h == 0 and oh == 0) or (oh % step_h == 0 and oh // step_h <= 4)
        seen.add((cw, ch))
    assert len(seen) == 10  # 4 diagonal + 2 x 3 off-diagonal pairs
    out = crop(repeated_clip(4, 160, 160), derive_rng(1))
    assert out.shape == (4, 3, 160, 160) and out.dtype == torch.uint8 and frames_identical(out, 0)


# ----------------------------------------------------------------------------------------------
# Mixup / CutMix


def test_smoothed_targets():
    target = torch.tensor([0, 3, 6, 1])
    y = one_hot_smoothed(target, 7, 0.1)
    assert torch.allclose(y.sum(1), torch.ones(4))
    assert torch.allclose(y[0, 0], torch.tensor(0.9 + 0.1 / 7)) and torch.allclose(y[0, 1], torch.tensor(0.1 / 7))
    mixed = mixup_target(target, 7, 0.3, 0.1)
    assert torch.allclose(mixed.sum(1), torch.ones(4))
    assert torch.allclose(mixed, 0.3 * y + 0.7 * y.flip(0))


def test_mixup_batch():
    x = torch.randn(4, 3, 2, 8, 8)
    target = torch.tensor([0, 1, 2, 3])
    mix = Mixup(mixup_alpha=0.8, cutmix_alpha=0.0, num_classes=5, label_smoothing=0.1)
    rng = derive_rng(0)
    lam, use_cutmix = mix.params(derive_rng(0))
    assert not use_cutmix and 0 < lam < 1
    out, soft = mix(x.clone(), target, rng)
    torch.testing.assert_close(out, lam * x + (1 - lam) * x.flip(0))
    torch.testing.assert_close(soft, mixup_target(target, 5, lam, 0.1))
    assert torch.allclose(soft.sum(1), torch.ones(4))
    with pytest.raises(ValueError, match="even"):
        mix(torch.randn(3, 3, 2, 8, 8), torch.tensor([0, 1, 2]), rng)


def test_cutmix_same_box_in_every_frame_and_corrected_lambda():
    x = torch.randn(4, 3, 6, 20, 20)
    target = torch.tensor([0, 1, 2, 3])
    mix = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, num_classes=4, label_smoothing=0.0)
    for seed in range(20):
        out, soft = mix(x.clone(), target, derive_rng(seed))
        changed = (out != x).any(dim=1)  # (B, T, H, W)
        if not changed.any():
            continue
        assert frames_identical(changed, 1)
        box = changed[0, 0]
        lam = 1 - box.sum().item() / (20 * 20)
        # with the flipped partner the box of sample 0 comes from sample 3
        assert torch.equal(out[0][:, :, box], x[3][:, :, box])
        torch.testing.assert_close(soft[0], torch.tensor([lam, 0, 0, 1 - lam]))
        assert torch.allclose(soft.sum(1), torch.ones(4))


def test_mixup_switch_and_probability():
    mix = Mixup(num_classes=7)  # mixup 0.8, cutmix 1.0, switch 0.5, prob 1.0
    flags = [mix.params(derive_rng(s))[1] for s in range(400)]
    assert 150 < sum(flags) < 250
    off = Mixup(num_classes=7, prob=0.0)
    x = torch.randn(2, 3, 2, 4, 4)
    out, soft = off(x.clone(), torch.tensor([1, 2]), derive_rng(0))
    assert torch.equal(out, x)
    torch.testing.assert_close(soft, one_hot_smoothed(torch.tensor([1, 2]), 7, 0.1))
    # the instance's own generator is seeded: two instances with one seed agree
    a = Mixup(num_classes=7, seed=5)(x.clone(), torch.tensor([1, 2]))
    b = Mixup(num_classes=7, seed=5)(x.clone(), torch.tensor([1, 2]))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_legacy_video_cutmix_cuts_along_time():
    x = torch.randn(2, 3, 16, 20, 20)
    legacy = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, num_classes=2, legacy_video_cutmix=True)
    for seed in range(30):
        out, _ = legacy(x.clone(), torch.tensor([0, 1]), derive_rng(seed))
        changed = (out != x).any(dim=1)  # (B, T, H, W)
        if changed.any():
            # the authors' slicing: whole rows of width; box rows fall on the time axis
            assert frames_identical(changed.transpose(1, 3), 1)  # same along W
            break
    else:
        pytest.fail("legacy cutmix never changed the batch")


def test_soft_target_cross_entropy():
    logits = torch.randn(6, 7)
    target = torch.tensor([0, 1, 2, 3, 4, 6])
    loss = SoftTargetCrossEntropy()
    torch.testing.assert_close(loss(logits, F.one_hot(target, 7).float()), F.cross_entropy(logits, target))
    torch.testing.assert_close(
        loss(logits, one_hot_smoothed(target, 7, 0.1)), F.cross_entropy(logits, target, label_smoothing=0.1)
    )
