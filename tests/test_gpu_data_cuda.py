"""The device data path on a CUDA device (skipped without one): ops, whole batches, erasing noise, Mixup.

Tolerances: nvJPEG's IDCT may move decoded pixels by a grey level or two from libjpeg-turbo's; the
ops themselves are the CPU ops' arithmetic (LUT ops and the float64 affine ops exact, blends within 1).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maedfer.data.datasets import FinetuneDataset, PretrainDataset
from maedfer.data.gpu.batch import BatchAugment, collate_device
from maedfer.data.gpu.rand_augment import apply_op, apply_ops
from maedfer.data.mixup import Mixup
from maedfer.data.rand_augment import DrawnOp, RandAugment
from maedfer.data.sampling import derive_rng
from maedfer.data.transforms import finetune_train_transform
from tests.test_gpu_data import BLEND_OPS, LENGTHS, OP_ARGS, face_like, write_toy_index

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return write_toy_index(tmp_path_factory.mktemp("gpu-data-cuda"))


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return torch.from_numpy(np.stack([face_like(k) for k in range(4)])).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("name", sorted(OP_ARGS))
def test_op_on_cuda_matches_cpu(clip, name):
    for args in OP_ARGS[name]:
        op = DrawnOp(name, args)
        got = apply_op(clip.cuda(), op)
        assert got.is_cuda and got.dtype == torch.uint8
        diff = (got.cpu().int() - apply_op(clip, op).int()).abs()
        assert int(diff.max()) <= (1 if name in BLEND_OPS else 0), (name, args)


def test_op_sequences_on_cuda(clip):
    ra = RandAugment.from_config("rand-m7-n4-mstd0.5-inc1")
    for seed in range(20):
        ops = ra.sample(np.random.default_rng(seed))
        diff = (apply_ops(clip.cuda(), ops).cpu().int() - apply_ops(clip, ops).int()).abs()
        assert float(diff.float().mean()) < 0.05


def test_cuda_batch_close_to_cpu_path(index):
    keys = [(i, 1) for i in range(len(LENGTHS))]
    kw = dict(size=32, seed=3, transform=finetune_train_transform(32, reprob=0))  # erasing noise: other test
    for ds_cpu, ds_dev in [
        (FinetuneDataset(index, None, "train", "train", **kw),
         FinetuneDataset(index, None, "train", "train", decode="device", **kw)),
        (PretrainDataset(index, size=32, seed=3), PretrainDataset(index, size=32, seed=3, decode="device")),
    ]:
        ref = torch.stack([s if isinstance(s, torch.Tensor) else s[0] for s in (ds_cpu[k] for k in keys)])
        got = BatchAugment(ds_dev.transform, "cuda")(collate_device([ds_dev[k] for k in keys]).pin_memory())
        assert got.is_cuda and got.shape == ref.shape
        diff = (got.cpu() - ref).abs()  # normalised units: 1 grey level ~ 0.017
        assert float(diff.mean()) < 0.03, float(diff.mean())


def test_cuda_erasing_boxes_exact_noise_standard_normal(index):
    transform = finetune_train_transform(32, auto_augment=None, reprob=1.0)
    ds = FinetuneDataset(index, None, "train", "train", size=32, seed=1, transform=transform, decode="device")
    batch = collate_device([ds[(i, 0)] for i in range(len(LENGTHS))])
    cpu, gpu = BatchAugment(transform, "cpu")(batch), BatchAugment(transform, "cuda")(batch).cpu()
    noise = []
    for plan, a, b in zip(batch.plans, cpu, gpu, strict=True):
        boxes, _ = plan.steps[-2]
        inside = torch.zeros(a.shape[-2:], dtype=torch.bool)
        for top, left, h, w in boxes:
            inside[top : top + h, left : left + w] = True
        assert (a[..., ~inside] - b[..., ~inside]).abs().mean() < 0.03  # outside the box: the same image
        noise.append(b[..., inside].flatten())
    noise = torch.cat(noise)
    assert noise.numel() > 1000 and abs(float(noise.mean())) < 0.1 and abs(float(noise.std()) - 1) < 0.1


def test_mixup_cutmix_on_cuda_identical_to_cpu():
    x = torch.randn(4, 3, 8, 32, 32)
    target = torch.tensor([0, 1, 2, 1])
    mixup = Mixup(0.8, 1.0, num_classes=3)
    for step in range(6):  # both branches (mixup and cutmix) come up
        a, ta = mixup(x.clone(), target, rng=derive_rng(0, step))
        b, tb = mixup(x.cuda(), target.cuda(), rng=derive_rng(0, step))
        assert b.is_cuda and tb.is_cuda
        torch.testing.assert_close(b.cpu(), a, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(tb.cpu(), ta)


def test_cuda_load_resize_close_to_pillow(tmp_path):
    index = write_toy_index(tmp_path, lengths=[40, 50], size=56, metadata={"load_resize": "pil_bilinear"})
    ds_cpu, ds_dev = PretrainDataset(index, size=40), PretrainDataset(index, size=40, decode="device")
    ref = torch.stack([ds_cpu[(i, 0)] for i in range(2)])
    augment = BatchAugment(ds_dev.transform, "cuda", ds_dev.load_size_for_device)
    got = augment(collate_device([ds_dev[(i, 0)] for i in range(2)]))  # torchvision's antialiased bilinear
    assert got.shape == ref.shape and float((got.cpu() - ref).abs().mean()) < 0.05
