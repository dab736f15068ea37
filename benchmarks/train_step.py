"""Training-step throughput with the real loader in the loop: pre-training and fine-tuning, LGI-Former vs ViT-B.

Builds a synthetic shard index (or takes --index), then times steps of the real loops' work: loader ->
(mask) -> forward -> loss -> backward -> AdamW. Prints steps/s, clips/s, TFLOP/s and MFU (model FLOPs x 3,
2 FLOPs per multiply-add, against --peak-tflops; 989 on H100/H200 by default).

    python benchmarks/train_step.py --device cuda --compile --batch-size 64 --workers 16
    python benchmarks/train_step.py --models lgi_former_test --batch-size 4 --steps 3        # CPU smoke run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from maedfer.data.datasets import FinetuneDataset, PretrainDataset, make_loader
from maedfer.data.mixup import Mixup, SoftTargetCrossEntropy
from maedfer.models import create_model
from maedfer.models.flops import classifier_flops, pretrain_flops

sys.path.insert(0, str(Path(__file__).parent))
from loader_throughput import build_synthetic_index  # noqa: E402


def _timed(step, batches, steps: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        step(next(batches))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(next(batches))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def _forever(loader):
    epoch = 0
    while True:
        loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def bench(name: str, index: Path, args: argparse.Namespace, device: torch.device) -> list[dict]:
    amp = dict(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    rows = []
    # pre-training
    pre = create_model(f"pretrain_{name}").to(device).train()
    gflops_pre = pretrain_flops(create_model(f"pretrain_{name}", init=False).eval()) / 1e9
    fwd = torch.compile(pre) if args.compile else pre
    opt = torch.optim.AdamW(pre.parameters(), lr=1e-4, betas=(0.9, 0.95))
    loader = make_loader(PretrainDataset(index), args.batch_size, shuffle=True, num_workers=args.workers,
                         drop_last=True, pin_memory=device.type == "cuda", persistent_workers=args.workers > 0)

    def pre_step(video: torch.Tensor) -> None:
        video = video.to(device, non_blocking=True)
        mask = pre.sample_mask(video.shape[0], device=device)
        with torch.autocast(**amp):
            pred = fwd(video, mask)
        pre.loss(video, pred, mask)["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    sec = _timed(pre_step, _forever(loader), args.steps, args.warmup, device)
    rows.append(("pretrain", name, sec, gflops_pre))
    pre = fwd = opt = loader = None  # free the pre-training model before the next one
    # fine-tuning
    model = create_model(name, num_classes=7).to(device).train()
    gflops_ft = classifier_flops(create_model(name, num_classes=7, init=False)) / 1e9
    fwd = torch.compile(model) if args.compile else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    mixup, criterion = Mixup(num_classes=7), SoftTargetCrossEntropy()
    loader = make_loader(FinetuneDataset(index, None, None, "train"), args.batch_size, shuffle=True,
                         num_workers=args.workers, drop_last=True, pin_memory=device.type == "cuda",
                         persistent_workers=args.workers > 0)

    def ft_step(batch) -> None:
        video, label, _ = batch
        video, target = mixup(video.to(device, non_blocking=True), label.to(device))
        with torch.autocast(**amp):
            logits = fwd(video)
        criterion(logits.float(), target).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    sec = _timed(ft_step, _forever(loader), args.steps, args.warmup, device)
    rows.append(("finetune", name, sec, gflops_ft))
    return [dict(stage=s, model=n, sec=t, gflops=g) for s, n, t, g in rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["lgi_former_base_patch16_160", "vit_base_patch16_160"])
    p.add_argument("--index", type=Path, help="index.parquet (default: a synthetic one)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--peak-tflops", type=float, default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    args.batch_size = args.batch_size or (32 if gpu else 2)
    args.workers = args.workers if args.workers is not None else (12 if gpu else 1)
    args.steps = args.steps or (10 if gpu else 2)
    args.warmup = args.warmup or (3 if gpu else 1)
    peak = args.peak_tflops or (989.0 if gpu and any(k in torch.cuda.get_device_name(device)
                                                     for k in ("H100", "H200")) else None)
    with tempfile.TemporaryDirectory() as tmp:
        index = args.index or build_synthetic_index(Path(tmp), clips=max(4 * args.batch_size, 16))
        where = torch.cuda.get_device_name(device) if gpu else f"CPU x{torch.get_num_threads()}"
        sys.stdout.write(f"# {where}, {'bf16' if gpu else 'fp32'}{' + compile' if args.compile else ''}, batch "
                         f"{args.batch_size}, {args.workers} loader workers, real loader in the loop\n")
        sys.stdout.write(f"{'stage':<9} {'model':<30} {'steps/s':>8} {'clips/s':>8} {'TFLOP/s':>8} {'MFU':>6}\n")
        for name in args.models:
            for r in bench(name, index, args, device):
                tflops = r["gflops"] * 3 * 2 * args.batch_size / r["sec"] / 1e3
                mfu = f"{100 * tflops / peak:5.1f}%" if peak else "-"
                sys.stdout.write(f"{r['stage']:<9} {r['model']:<30} {1 / r['sec']:>8.2f} "
                                 f"{args.batch_size / r['sec']:>8.1f} {tflops:>8.2f} {mfu:>6}\n")
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
