"""Where training time goes, side by side in one run on one device: model-only, loader-only, end to end.

For each stage (pre-training, fine-tuning) and model (LGI-Former base, ViT-B by default), one row per:

* ``model``: the training step alone (forward, loss, backward, AdamW) on a batch already on the device;
* ``loader (<path>)``: the data path alone, batches delivered on the device ready for the model, for each
  data path asked for (``cpu``: decode and augment in DataLoader workers; ``device``: workers read bytes,
  decoding and augmentation on the device);
* ``end to end (<path>)``: loader and step together, as the training loops run them.

Each row gives clips/s, MFU (model FLOPs x 3, 2 FLOPs per multiply-add, against --peak-tflops; 989 for
H100/H200 bf16 dense) and the peak device memory. With ``--official-repo PATH`` (a checkout of the authors'
MAE-DFER code that you have; nothing of it is copied here, it is imported from PATH at run time and needs
its own dependencies, e.g. timm 0.4.12) the authors' models run the same steps on the same clips and device,
and their fine-tuning data path (frame folders, PIL) reads the same clips exported as JPEG folders.

    python benchmarks/speed.py --device cuda --batch-size 64 --workers 16            # the README's GPU table
    python benchmarks/speed.py --device cuda --official-repo ~/src/MAE-DFER            # + the authors' code
    python benchmarks/speed.py --models lgi_former_test vit_test --batch-size 2 --steps 2   # CPU smoke run
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from maedfer.data.datasets import FinetuneDataset, PretrainDataset, make_loader
from maedfer.data.gpu.batch import BatchAugment
from maedfer.data.mixup import Mixup, SoftTargetCrossEntropy
from maedfer.models import create_model
from maedfer.models.flops import classifier_flops, pretrain_flops
from maedfer.train.compile import compile_mode, compile_model

sys.path.insert(0, str(Path(__file__).parent))
import official_side  # noqa: E402
from loader_throughput import build_synthetic_index  # noqa: E402
from model_throughput import peak_memory_gib  # noqa: E402
from train_step import _forever as forever  # noqa: E402

NUM_CLASSES = 7


@dataclass
class Row:
    """One measured line of the table."""

    stage: str
    model: str
    what: str
    clips_s: float | None
    gflops: float | None  # model GMACs per clip (None: not a model row)
    mem_gib: float | None
    note: str = ""


def reset_peak(device: torch.device) -> None:
    """Start a new memory-peak window."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def timed(fn: Callable[[], None], steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


# ----------------------------------------------------------------------------------------------
# Data paths: each yields batches on the device, as the training loop consumes them.


def cpu_batches(stage: str, index: Path, args: argparse.Namespace, device: torch.device) -> Iterator:
    """The CPU data path: decode + augment in DataLoader workers, then copy to the device."""
    ds = PretrainDataset(index) if stage == "pretrain" else FinetuneDataset(index, None, None, "train")
    loader = make_loader(ds, args.batch_size, shuffle=True, num_workers=args.workers, drop_last=True,
                         pin_memory=device.type == "cuda", persistent_workers=args.workers > 0)
    for batch in forever(loader):
        video = batch if stage == "pretrain" else batch[0]
        label = None if stage == "pretrain" else batch[1].to(device, non_blocking=True)
        yield video.to(device, non_blocking=True), label


def device_batches(stage: str, index: Path, args: argparse.Namespace, device: torch.device) -> Iterator:
    """The device data path: workers read JPEG bytes and draw plans; decoding and augmentation on ``device``."""
    if stage == "pretrain":
        ds = PretrainDataset(index, decode="device")
    else:
        ds = FinetuneDataset(index, None, None, "train", decode="device")
    augment = BatchAugment(ds.transform, device, ds.load_size_for_device)
    loader = make_loader(ds, args.batch_size, shuffle=True, num_workers=args.workers, drop_last=True,
                         pin_memory=device.type == "cuda", persistent_workers=args.workers > 0)
    for batch in forever(loader):
        label = None if stage == "pretrain" else batch.labels.to(device, non_blocking=True)
        yield augment(batch), label


DATA_PATHS: dict[str, Callable[..., Iterator]] = {"cpu": cpu_batches, "device": device_batches}


# ----------------------------------------------------------------------------------------------
# Steps


def make_step(stage: str, name: str, args: argparse.Namespace, device: torch.device):
    """(step(video, label), GMACs per clip) for our model ``name`` in ``stage``."""
    torch.manual_seed(0)
    amp = dict(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    mode = compile_mode(args.compile, device)
    if stage == "pretrain":
        model = create_model(f"pretrain_{name}").to(device).train()
        gmacs = pretrain_flops(create_model(f"pretrain_{name}", init=False).eval()) / 1e9
        fwd = compile_model(model, mode)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), fused=device.type == "cuda")

        def step(video: torch.Tensor, label: torch.Tensor | None) -> None:
            mask = model.sample_mask(video.shape[0], device=device)
            with torch.autocast(**amp):
                pred = fwd(video, mask)
            model.loss(video, pred, mask)["loss"].backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step, gmacs
    model = create_model(name, num_classes=NUM_CLASSES).to(device).train()
    gmacs = classifier_flops(create_model(name, num_classes=NUM_CLASSES, init=False)) / 1e9
    fwd = compile_model(model, mode)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    mixup, criterion = Mixup(num_classes=NUM_CLASSES), SoftTargetCrossEntropy()

    def step(video: torch.Tensor, label: torch.Tensor) -> None:
        video, target = mixup(video, label)
        with torch.autocast(**amp):
            logits = fwd(video)
        criterion(logits.float(), target).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, gmacs


def synthetic_batch(args: argparse.Namespace, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A normalised clip batch (B, 3, 16, 160, 160) and labels, resident on the device."""
    g = torch.Generator().manual_seed(0)
    video = torch.randn(args.batch_size, 3, 16, 160, 160, generator=g).to(device)
    return video, torch.randint(0, NUM_CLASSES, (args.batch_size,), generator=g).to(device)


def measure_stage(stage: str, name: str, index: Path, args: argparse.Namespace, device: torch.device,
                  step_factory=make_step, label: str | None = None) -> list[Row]:
    """The model, loader and end-to-end rows of one (stage, model)."""
    rows, label = [], label or name
    reset_peak(device)
    step, gmacs = step_factory(stage, name, args, device)
    video, lab = synthetic_batch(args, device)
    sec = timed(lambda: step(video, lab), args.steps, args.warmup, device)
    rows.append(Row(stage, label, "model", args.batch_size / sec, gmacs, peak_memory_gib(device)))
    for path in args.data_paths:
        try:
            batches = DATA_PATHS[path](stage, index, args, device)
            reset_peak(device)
            sec = timed(lambda b=batches: next(b), args.steps, args.warmup, device)
            rows.append(Row(stage, label, f"loader ({path})", args.batch_size / sec, None, peak_memory_gib(device)))
            reset_peak(device)
            sec = timed(lambda b=batches: step(*next(b)), args.steps, args.warmup, device)
            rows.append(Row(stage, label, f"end to end ({path})", args.batch_size / sec, gmacs,
                            peak_memory_gib(device)))
        except (ImportError, NotImplementedError, RuntimeError) as exc:
            rows.append(Row(stage, label, f"loader ({path})", None, None, None, f"n/a: {str(exc).splitlines()[0]}"))
    return rows


def render(rows: list[Row], args: argparse.Namespace, device: torch.device, peak: float | None) -> str:
    """The Markdown table, headed by the date, device and command."""
    cpu = platform.processor() or platform.machine()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({cpu})"
    lines = [f"# {datetime.date.today().isoformat()}, {where}, {torch.get_num_threads()} threads, "
             f"{'bf16' if device.type == 'cuda' else 'fp32'}, compile={args.compile}, batch {args.batch_size}, "
             f"{args.workers} loader workers",
             f"# command: python benchmarks/speed.py {shlex.join(sys.argv[1:])}", "",
             "| stage | model | measured | clips/s | MFU | peak mem (GiB) | note |",
             "|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        clips = f"{r.clips_s:.4g}" if r.clips_s is not None else "-"
        mfu = "-"
        if peak and r.clips_s is not None and r.gflops is not None:
            mfu = f"{100 * r.gflops * 3 * 2 * r.clips_s / 1e3 / peak:.1f} %"
        mem = f"{r.mem_gib:.1f}" if r.mem_gib is not None else "-"
        lines.append(f"| {r.stage} | {r.model} | {r.what} | {clips} | {mfu} | {mem} | {r.note} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["lgi_former_base_patch16_160", "vit_base_patch16_160"])
    p.add_argument("--stages", nargs="+", choices=["pretrain", "finetune"], default=["pretrain", "finetune"])
    p.add_argument("--data-paths", nargs="+", choices=sorted(DATA_PATHS), default=None,
                   help="default: cpu and device (the CPU fallback of the device path is slower than cpu on CPU)")
    p.add_argument("--index", type=Path, help="index.parquet of an ingested dataset (default: a synthetic one)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--compile", default="auto", type=lambda s: {"true": True, "false": False}.get(s.lower(), s),
                   help="auto (default: CUDA graphs on a GPU, eager on CPU), true or false")
    p.add_argument("--peak-tflops", type=float, default=None)
    p.add_argument("--official-repo", type=Path, help="a checkout of the authors' MAE-DFER code to compare with")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    args.batch_size = args.batch_size or (64 if gpu else 2)
    args.workers = args.workers if args.workers is not None else (16 if gpu else 1)
    args.steps = args.steps or (20 if gpu else 2)
    args.warmup = args.warmup or (5 if gpu else 1)
    args.data_paths = args.data_paths or ["cpu", "device"]
    peak = args.peak_tflops or (989.0 if gpu and any(k in torch.cuda.get_device_name(device)
                                                     for k in ("H100", "H200")) else None)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        index = args.index or build_synthetic_index(Path(tmp), clips=max(8 * args.batch_size, 32))
        for stage in args.stages:
            for name in args.models:
                rows += measure_stage(stage, name, index, args, device)
                sys.stderr.write(f"done: {stage} {name}\n")
            if args.official_repo:
                rows += official_side.measure(stage, args.official_repo, index, Path(tmp), args, device,
                                              timed=timed, reset_peak=reset_peak, peak_memory_gib=peak_memory_gib,
                                              row=Row)
    sys.stdout.write(render(rows, args, device, peak))
    return 0


if __name__ == "__main__":
    sys.exit(main())
