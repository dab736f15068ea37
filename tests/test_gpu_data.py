"""The device data path on CPU tensors: tensor RandAugment ops vs Pillow, plans vs the CPU draws,
whole batches vs the CPU path, worker-count independence. CUDA checks are in tests/test_gpu_data_cuda.py."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from maedfer.data.datasets import FinetuneDataset, PretrainDataset, make_loader
from maedfer.data.gpu.batch import BatchAugment, ClipBytes, DeviceBatch, collate_device
from maedfer.data.gpu.decode import decode_batch
from maedfer.data.gpu.plan import ClipPlan, NoDeviceVersion, draw_plan
from maedfer.data.gpu.rand_augment import apply_op, apply_ops, apply_ops_batch
from maedfer.data.rand_augment import DrawnOp, RandAugment
from maedfer.data.sampling import derive_rng
from maedfer.data.shards import ShardError, ShardWriter, build_index_table
from maedfer.data.shards import write_index as write_index_table
from maedfer.data.transforms import Compose, Normalize, finetune_train_transform, pretrain_transform

SIZE = 40
LENGTHS = [70, 20, 90, 45, 64, 33]

# Ops whose result is Pillow's blend (float maths truncated): stated tolerance 1 grey level; all else exact.
BLEND_OPS = {"Color", "Contrast", "Brightness", "Sharpness"}
OP_ARGS = {
    "AutoContrast": [()], "Equalize": [()], "Invert": [()], "Rotate": [(17.3,), (-29.9,), (0.0,)],
    "Posterize": [(0,), (2,), (4,), (8,)], "Solarize": [(0,), (128,), (256,)], "SolarizeAdd": [(0,), (110,)],
    "Color": [(0.1,), (1.0,), (1.9,)], "Contrast": [(0.1,), (1.7,)], "Brightness": [(0.2,), (1.9,)],
    "Sharpness": [(0.1,), (1.9,)], "ShearX": [(0.3,), (-0.17,)], "ShearY": [(0.1,), (-0.3,)],
    "TranslateXRel": [(0.45,), (-0.1234,)], "TranslateYRel": [(0.2,), (-0.45,)],
}  # fmt: skip


def face_like(k: int, clip: int = 0, size: int = SIZE) -> np.ndarray:
    """A frame with edges, gradients, a blob and noise (uint8 H x W x 3)."""
    rng = np.random.default_rng(1000 * clip + k)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    blob = 120 * np.exp(-((x - size * 0.45) ** 2 + (y - size * 0.5) ** 2) / (2 * (0.22 * size) ** 2))
    img = np.stack([blob + 2 * x + 8 * k, blob * 0.7 + 3 * y, 60 + 40 * np.sin(x / 3 + k) + 20 * clip], -1)
    img[size // 3 : size // 2, size // 4 : size // 2] += 50  # a hard edge
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def write_toy_index(out, lengths=LENGTHS, size=SIZE, metadata=None):
    rows = []
    with ShardWriter(out, "gpu-data", 60_000) as writer:
        for i, n in enumerate(lengths):
            frames = [cv2.imencode(".jpg", cv2.cvtColor(face_like(k, i, size), cv2.COLOR_RGB2BGR))[1].tobytes()
                      for k in range(n)]
            c = writer.add(f"clip{i:03d}", frames, height=size, width=size, fps=25.0, key=f"k{i}")
            rows.append(dict(clip_id=c.clip_id, label=i % 3, label_name=f"c{i % 3}", subject=None, train_folds=[1],
                             test_folds=[2], shard=c.shard, row=c.row, num_frames=c.num_frames, height=size,
                             width=size, fps=25.0, checksum=c.checksum, source=f"v/{i}.mp4"))
    index = out / "index.parquet"
    meta = {"dataset": "toy", "class_names": '["a", "b", "c"]', **(metadata or {})}
    write_index_table(index, build_index_table(rows, meta))
    return index


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return write_toy_index(tmp_path_factory.mktemp("gpu-data"))


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return torch.from_numpy(np.stack([face_like(k) for k in range(4)])).permute(0, 3, 1, 2).contiguous()


def pillow(clip: torch.Tensor, ops: list[DrawnOp]) -> torch.Tensor:
    frames = RandAugment().apply([Image.fromarray(f) for f in clip.permute(0, 2, 3, 1).numpy()], ops)
    return torch.from_numpy(np.stack([np.asarray(f) for f in frames])).permute(0, 3, 1, 2)


@pytest.mark.parametrize("name", sorted(OP_ARGS))
def test_op_matches_pillow(clip, name):
    for args in OP_ARGS[name]:
        op = DrawnOp(name, args)
        got, ref = apply_op(clip, op), pillow(clip, [op])
        assert got.dtype == torch.uint8 and got.shape == clip.shape
        diff = (got.int() - ref.int()).abs()
        assert int(diff.max()) <= (1 if name in BLEND_OPS else 0), (name, args, int(diff.max()))


def test_drawn_op_sequences_match_pillow(clip):
    ra = RandAugment.from_config("rand-m7-n4-mstd0.5-inc1")
    for seed in range(40):
        ops = ra.sample(np.random.default_rng(seed))
        diff = (apply_ops(clip, ops).int() - pillow(clip, ops).int()).abs()
        # each blend op may move a pixel by one grey level, and later ops may carry that along
        assert float(diff.float().mean()) < 0.05 and int(diff.max()) <= 8, (ops, int(diff.max()))


@pytest.mark.parametrize("pipeline", ["finetune", "pretrain"])
def test_plans_draw_what_the_cpu_path_draws(clip, pipeline):
    transform = finetune_train_transform(SIZE, reprob=0.5) if pipeline == "finetune" else pretrain_transform(SIZE)
    for i in range(30):
        rng_cpu, rng_plan = derive_rng(3, 1, i), derive_rng(3, 1, i)
        transform(clip, rng_cpu)
        steps = draw_plan(transform, SIZE, SIZE, rng_plan)
        assert len(steps) == len(transform.transforms)
        assert rng_cpu.bit_generator.state == rng_plan.bit_generator.state  # same draws, same order


def cpu_and_device(ds_cpu, ds_dev, keys):
    ref = torch.stack([ds_cpu[k] if isinstance(ds_cpu, PretrainDataset) else ds_cpu[k][0] for k in keys])
    batch = collate_device([ds_dev[k] for k in keys])
    return ref, BatchAugment(ds_dev.transform, "cpu", ds_dev.load_size_for_device)(batch), batch


def test_finetune_batch_equals_cpu_path(index):
    transform = finetune_train_transform(32, reprob=1.0)  # RandAugment, crop, flip, erasing every clip
    kw = dict(size=32, seed=5, transform=transform)
    ds_cpu = FinetuneDataset(index, None, "train", "train", **kw)
    ds_dev = FinetuneDataset(index, None, "train", "train", decode="device", **kw)
    keys = [(i, 2) for i in range(len(LENGTHS))]
    ref, got, batch = cpu_and_device(ds_cpu, ds_dev, keys)
    assert got.shape == (len(LENGTHS), 3, 16, 32, 32) and got.dtype == torch.float32
    assert batch.labels.tolist() == [i % 3 for i in range(len(LENGTHS))]
    assert batch.indices.tolist() == list(range(len(LENGTHS)))
    # blend ops may differ by a grey level (1 / (255 std) ~ 0.017 after Normalize); everything else is exact
    diff = (got - ref).abs()
    assert float(diff.max()) < 0.2 and float(diff.mean()) < 1e-3
    no_ra = finetune_train_transform(32, auto_augment=None, reprob=1.0)
    ds_cpu.transform, ds_dev.transform = no_ra, no_ra
    ref, got, _ = cpu_and_device(ds_cpu, ds_dev, keys)
    assert torch.equal(got, ref)  # decode, normalise, crop, flip, erasing (box and noise): bit-exact on CPU


def test_pretrain_and_val_batches_equal_cpu_path(index):
    ref, got, _ = cpu_and_device(PretrainDataset(index, size=32, seed=2),
                                 PretrainDataset(index, size=32, seed=2, decode="device"), [(i, 0) for i in range(6)])
    assert torch.equal(got, ref)
    ref, got, _ = cpu_and_device(FinetuneDataset(index, None, "train", "val", size=SIZE),
                                 FinetuneDataset(index, None, "train", "val", size=SIZE, decode="device"), [0, 3])
    assert torch.equal(got, ref)


def test_load_resize_index_equals_cpu_path(tmp_path):
    index = write_toy_index(tmp_path, lengths=[40, 50], size=56, metadata={"load_resize": "pil_bilinear"})
    ref, got, _ = cpu_and_device(PretrainDataset(index, size=SIZE), PretrainDataset(index, size=SIZE, decode="device"),
                                 [0, 1])
    assert got.shape == (2, 3, 16, SIZE, SIZE) and torch.equal(got, ref)


def test_device_samples_independent_of_workers(index):
    ds = FinetuneDataset(index, None, "train", "train", size=32, seed=9, decode="device")
    augment = BatchAugment(ds.transform, "cpu")
    out = []
    for workers in (0, 2):
        loader = make_loader(ds, 3, shuffle=True, seed=4, num_workers=workers)
        loader.sampler.set_epoch(1)
        batches = list(loader)
        assert all(isinstance(b, DeviceBatch) for b in batches)
        out.append((torch.cat([b.indices for b in batches]), torch.cat([augment(b) for b in batches])))
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])


def test_bad_input_is_named(index, clip):
    with pytest.raises(ValueError, match="test mode reads on the CPU"):
        FinetuneDataset(index, None, "train", "test", decode="device")
    with pytest.raises(ValueError, match="decode must be"):
        PretrainDataset(index, decode="gpu")
    with pytest.raises(NoDeviceVersion, match="no device version"):
        PretrainDataset(index, decode="device", transform=Compose([Normalize(), lambda c, r: c]))
    with pytest.raises(NoDeviceVersion, match="bicubic only"):
        BatchAugment(Compose([RandAugment(interpolation="bilinear")]), "cpu")
    good, bad = cv2.imencode(".jpg", face_like(0))[1].tobytes(), bytes(100)
    samples = [ClipBytes.of(jpegs, ClipPlan(np.zeros(1, np.int64)), 0, i, f"clip{i}")
               for i, jpegs in enumerate([[good], [good, bad]])]
    batch = collate_device(samples)
    assert batch.counts == [1, 2] and batch.sizes == [len(good), len(good), 100]
    assert bytes(batch.jpegs[1].numpy()) == good
    with pytest.raises(ShardError, match="clip 'clip1' does not decode"):
        decode_batch(batch.jpegs, "cpu", batch.names, batch.counts)


@pytest.mark.slow
def test_training_loops_give_the_same_run_on_either_path(tmp_path):
    from maedfer.settings import FinetuneConfig, PretrainConfig
    from maedfer.train.finetune_loop import finetune
    from maedfer.train.pretrain_loop import pretrain
    from tests.test_datasets import write_toy_index as write_labelled_index

    index = write_labelled_index(tmp_path / "toy")
    geom = dict(img_size=64, num_frames=8, region_size=(2, 2, 4))
    ft = dict(arch="lgi_former_test", arch_kwargs=geom, epochs=1, warmup_epochs=0, batch_size=2, num_workers=0,
              stride=2, base_lr=0.5, auto_augment=None, reprob=1.0)  # no blend op: bit-exact on CPU
    runs = {p: finetune(FinetuneConfig(**ft, data_path=p), index, 1, tmp_path / f"ft-{p}") for p in ("cpu", "device")}
    assert runs["device"]["history"][0]["train/loss"] == runs["cpu"]["history"][0]["train/loss"]
    assert runs["device"]["metrics"] == runs["cpu"]["metrics"]
    pt = dict(arch="pretrain_lgi_former_test", arch_kwargs={**geom, "mask_ratio": 0.75}, epochs=1, warmup_epochs=0,
              batch_size=2, num_workers=0, stride=2, preview_every_epochs=1)
    runs = {p: pretrain(PretrainConfig(**pt, data_path=p), index, tmp_path / f"pt-{p}") for p in ("cpu", "auto")}
    assert runs["cpu"]["losses"] == runs["auto"]["losses"]  # auto on CPU is the CPU path
    device = pretrain(PretrainConfig(**pt, data_path="device"), index, tmp_path / "pt-device")
    assert device["losses"] == runs["cpu"]["losses"]
    assert (tmp_path / "pt-device" / "previews" / "epoch-0001.png").is_file()
    with pytest.raises(ValueError, match="data_path: 'gpu' is not a data path"):
        pretrain(PretrainConfig(**pt, data_path="gpu"), index, tmp_path / "pt-bad")


def test_batched_ops_equal_clip_by_clip(clip, monkeypatch):
    monkeypatch.setattr("maedfer.data.gpu.rand_augment.AFFINE_CHUNK", 3)  # affine groups split mid-clip too
    ra = RandAugment.from_config("rand-m7-n4-mstd0.5-inc1")
    clips = torch.stack([clip, clip.flip(-1), clip.flip(-2), 255 - clip, clip, clip])  # (B, T, 3, H, W)
    ops = [ra.sample(np.random.default_rng(seed)) for seed in range(len(clips))]
    ops[-1] = []  # a clip with no op
    got = apply_ops_batch(clips, ops)
    for c, o, g in zip(clips, ops, got, strict=True):
        assert torch.equal(g, apply_ops(c, o))


def test_a_clip_that_is_not_jpeg_is_named(tmp_path, monkeypatch):
    import maedfer.data.datasets as datasets

    index = write_toy_index(tmp_path, lengths=[40])
    ds = PretrainDataset(index, decode="device", verify_checksums=False)
    real = datasets.read_clip_frames
    monkeypatch.setattr(datasets, "read_clip_frames", lambda *a, **k: [b"not a jpeg"] * len(real(*a, **k)))
    with pytest.raises(ShardError, match=r"clip 'clip000' \(row 0\) does not decode"):
        ds[0]
