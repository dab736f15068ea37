"""The authors' MAE-DFER code, measured beside ours by ``benchmarks/speed.py --official-repo PATH``.

Nothing of the authors' code is in this project: their modules are imported at run time from the checkout
the user points to (``PATH``), which needs its own dependencies (timm 0.4.12, decord). Models are built as
their run scripts build them (``scripts/dfew/finetune_*`` and ``scripts/voxceleb2/pretrain_*``: LGI-Former
base, depth 16, regions 2x5x10; ViT-B for the VideoMAE rows); their fine-tuning data path
(``datasets.build_dataset`` over frame folders, PIL decoding and augmentation in DataLoader workers) reads
the same clips as ours, exported from the index as JPEG folders.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from maedfer.data.datasets import FinetuneDataset
from maedfer.data.shards import read_clip_frames
from maedfer.models import create_model

NUM_CLASSES = 7
LGI_KWARGS = dict(attn_type="local_global", lg_region_size=[2, 5, 10], lg_first_attn_type="self",
                  lg_third_attn_type="cross", lg_attn_param_sharing_first_third=False,
                  lg_attn_param_sharing_all=False, lg_no_second=False, lg_no_third=False)
# (our model name, their timm name, their kwargs) per stage
MODELS = {
    "finetune": [
        ("lgi_former_base", "vit_base_dim512_no_depth_patch16_160",
         dict(depth=16, lg_classify_token_type="region", use_mean_pooling=True, **LGI_KWARGS)),
        ("vit_base", "vit_base_patch16_160", dict(use_mean_pooling=True)),
    ],
    "pretrain": [
        ("lgi_former_base", "pretrain_videomae_base_dim512_no_depth_patch16_160",
         dict(encoder_depth=16, decoder_depth=4, **LGI_KWARGS)),
        ("vit_base", "pretrain_videomae_base_patch16_160", dict(decoder_depth=4)),
    ],
}


def import_official(repo: Path):
    """(timm.create_model, their ``datasets`` module or the ImportError) with ``repo`` on the path."""
    if not (repo / "modeling_finetune.py").is_file():
        raise SystemExit(f"--official-repo {repo}: no modeling_finetune.py there; point it at a MAE-DFER checkout")
    sys.path.insert(0, str(repo))
    try:
        from timm.models import create_model as timm_create
    except ImportError as exc:
        hint = "e.g. pip install timm==0.4.12"
        raise SystemExit(f"--official-repo needs the authors' environment ({exc}); {hint}") from None
    importlib.import_module("modeling_finetune")  # registers their models with timm
    importlib.import_module("modeling_pretrain")
    try:
        datasets = importlib.import_module("datasets")
    except ImportError as exc:  # decord missing: models only
        datasets = exc
    return timm_create, datasets


def make_official_step(timm_create, timm_name: str, kwargs: dict, stage: str, device: torch.device):
    """(step(video, label), None) running the authors' model ``timm_name`` as their engines do."""
    torch.manual_seed(0)
    amp = dict(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    if stage == "pretrain":
        model = timm_create(timm_name, pretrained=False, drop_path_rate=0.0, drop_block_rate=None, **kwargs)
        model = model.to(device).train()
        masker = create_model("pretrain_lgi_former_base_patch16_160", init=False)  # same window masks as theirs
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))

        def step(video: torch.Tensor, label: torch.Tensor | None) -> None:
            mask = masker.sample_mask(video.shape[0], device=device)
            with torch.autocast(**amp):
                out = model(video, mask)
            torch.nn.functional.mse_loss(out.float(), torch.zeros_like(out, dtype=torch.float32)).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step
    model = timm_create(timm_name, pretrained=False, num_classes=NUM_CLASSES, all_frames=16, tubelet_size=2,
                        drop_path_rate=0.1, **kwargs).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(video: torch.Tensor, label: torch.Tensor) -> None:
        with torch.autocast(**amp):
            logits = model(video)
        torch.nn.functional.cross_entropy(logits.float(), label).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def export_frame_folders(index: Path, out: Path, clips: int) -> Path:
    """Write ``clips`` clips of ``index`` as JPEG folders + their ``train.csv``; returns the split folder."""
    ds = FinetuneDataset(index, None, None, "train")
    lines = []
    for i in range(min(clips, len(ds))):
        folder = out / "frames" / f"clip{i:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        n = int(ds.num_frames[i])
        jpegs = read_clip_frames(ds.shard_paths[ds.shard_ids[i]], int(ds.rows[i]), list(range(n)))
        for j, data in enumerate(jpegs):
            (folder / f"{j + 1:05d}.jpg").write_bytes(data)
        lines.append(f"{folder} {int(ds.labels[i])}")
    split = out / "split01"
    split.mkdir(parents=True, exist_ok=True)
    for name in ("train.csv", "val.csv", "test.csv"):
        (split / name).write_text("\n".join(lines) + "\n")
    return split


def official_finetune_batches(datasets, split: Path, args: argparse.Namespace, device: torch.device) -> Iterator:
    """The authors' fine-tuning data path (DFEW settings of their script), batches on ``device``."""
    their = argparse.Namespace(
        data_set="DFEW", data_path=str(split), num_frames=16, sampling_rate=4, input_size=160, short_side_size=160,
        test_num_segment=2, test_num_crop=2, num_sample=1, aa="rand-m7-n4-mstd0.5-inc1",
        train_interpolation="bicubic", reprob=0.25, remode="pixel", recount=1)
    dataset, _ = datasets.build_dataset(is_train=True, test_mode=False, args=their)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                                         num_workers=args.workers, drop_last=True, pin_memory=device.type == "cuda",
                                         persistent_workers=args.workers > 0)
    while True:
        for video, label, *_ in loader:
            yield video.to(device, non_blocking=True), label.to(device, non_blocking=True)


def measure(stage: str, repo: Path, index: Path, tmp: Path, args: argparse.Namespace, device: torch.device, *,
            timed: Callable, reset_peak: Callable, peak_memory_gib: Callable, row: type) -> list:
    """The authors' rows for ``stage``: model-only, and for fine-tuning their loader and end to end."""
    timm_create, datasets = import_official(repo)
    rows = []
    g = torch.Generator().manual_seed(0)
    video = torch.randn(args.batch_size, 3, 16, 160, 160, generator=g).to(device)
    label = torch.randint(0, NUM_CLASSES, (args.batch_size,), generator=g).to(device)
    for ours, timm_name, kwargs in MODELS[stage]:
        name = f"authors' {ours}"
        reset_peak(device)
        step = make_official_step(timm_create, timm_name, kwargs, stage, device)
        sec = timed(lambda s=step: s(video, label), args.steps, args.warmup, device)
        gmacs = next(r.gflops for r in _OUR_GMACS(stage, ours))
        rows.append(row(stage, name, "model", args.batch_size / sec, gmacs, peak_memory_gib(device)))
        if stage != "finetune":
            rows.append(row(stage, name, "loader (authors')", None, None, None,
                            "n/a: their pre-training loader reads mp4 files with decord; not exported here"))
            continue
        if isinstance(datasets, ImportError):
            rows.append(row(stage, name, "loader (authors')", None, None, None, f"n/a: {datasets}"))
            continue
        split = export_frame_folders(index, tmp / "official", max(8 * args.batch_size, 32))
        batches = official_finetune_batches(datasets, split, args, device)
        reset_peak(device)
        sec = timed(lambda b=batches: next(b), args.steps, args.warmup, device)
        rows.append(row(stage, name, "loader (authors')", args.batch_size / sec, None, peak_memory_gib(device)))
        reset_peak(device)
        sec = timed(lambda b=batches, s=step: s(*next(b)), args.steps, args.warmup, device)
        rows.append(row(stage, name, "end to end (authors')", args.batch_size / sec, gmacs, peak_memory_gib(device)))
    return rows


def _OUR_GMACS(stage: str, ours: str):  # noqa: N802 (reads like a table)
    """Our model's GMACs per clip for the MFU column (the authors' models are numerically the same)."""
    from maedfer.models.flops import classifier_flops, pretrain_flops

    name = f"{ours}_patch16_160"
    if stage == "pretrain":
        g = pretrain_flops(create_model(f"pretrain_{name}", init=False).eval()) / 1e9
    else:
        g = classifier_flops(create_model(name, num_classes=NUM_CLASSES, init=False)) / 1e9
    yield argparse.Namespace(gflops=g)
