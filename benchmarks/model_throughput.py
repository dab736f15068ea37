"""Forward+backward throughput and peak memory of LGI-Former base vs ViT-B (16 x 160 x 160 clips).

Prints one row per (model, batch size): clips/s, ms/step, achieved TFLOP/s (model FLOPs x 3 for
forward+backward, 2 FLOPs per multiply-add), MFU against --peak-tflops, and peak memory.

    python benchmarks/model_throughput.py                       # CPU, fp32, small batches
    python benchmarks/model_throughput.py --device cuda --dtype bf16 --compile --batch-sizes 8 16 32 64
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import torch

from maedfer.models import create_model
from maedfer.models.flops import classifier_flops

DEFAULT_MODELS = ["lgi_former_base_patch16_160", "vit_base_patch16_160"]


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process peak RSS (KiB -> GiB)


def bench(name: str, batch: int, device: torch.device, dtype: str, compile_: str | None, steps: int,
          warmup: int) -> dict:
    torch.manual_seed(0)
    model = create_model(name, num_classes=7).to(device).train()
    gflops = classifier_flops(create_model(name, num_classes=7, init=False)) / 1e9  # meta-device count
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    step_model = torch.compile(model, mode=compile_) if compile_ else model
    x = torch.randn(batch, 3, 16, 160, 160, device=device)
    y = torch.randint(0, 7, (batch,), device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> None:
        with amp:
            loss = torch.nn.functional.cross_entropy(step_model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    sec = (time.perf_counter() - start) / steps
    tflops = gflops * 3 * 2 * batch / sec / 1e3
    return dict(model=name, batch=batch, clips_s=batch / sec, ms=sec * 1e3, tflops=tflops,
                mem=peak_memory_gib(device), gflops=gflops)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    p.add_argument("--batch-sizes", type=int, nargs="+")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default=None, help="default: bf16 on GPU, fp32 on CPU")
    p.add_argument("--compile", nargs="?", const="default", default=None,
                   choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
                   help="torch.compile the model (optionally with a mode; reduce-overhead uses CUDA graphs)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="accelerator's dense bf16 peak for MFU (default: 989 on H100/H200, none on CPU)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    dtype = args.dtype or ("bf16" if gpu else "fp32")
    batches = args.batch_sizes or ([8, 16, 32, 64] if gpu else [1, 2])
    steps = args.steps or (20 if gpu else 3)
    warmup = args.warmup or (5 if gpu else 1)
    peak = args.peak_tflops
    if peak is None and gpu and any(k in torch.cuda.get_device_name(device) for k in ("H100", "H200")):
        peak = 989.0
    where = torch.cuda.get_device_name(device) if gpu else f"CPU x{torch.get_num_threads()} threads"
    mode = f" + compile {args.compile}" if args.compile else ""
    sys.stdout.write(f"# {where}, {dtype}{mode}, torch {torch.__version__}, "
                     f"forward+backward+AdamW, 16x160x160 clips, {steps} timed steps\n")
    sys.stdout.write(f"{'model':<30} {'batch':>5} {'clips/s':>9} {'ms/step':>9} {'TFLOP/s':>8} {'MFU':>6} "
                     f"{'peak GiB':>9}\n")
    for name in args.models:
        for b in batches:
            try:
                r = bench(name, b, device, dtype, args.compile, steps, warmup)
            except torch.OutOfMemoryError:
                sys.stdout.write(f"{name:<30} {b:>5} {'OOM':>9}\n")
                torch.cuda.empty_cache()
                continue
            mfu = f"{100 * r['tflops'] / peak:5.1f}%" if peak else "-"
            sys.stdout.write(f"{name:<30} {b:>5} {r['clips_s']:>9.2f} {r['ms']:>9.1f} {r['tflops']:>8.2f} {mfu:>6} "
                             f"{r['mem']:>9.2f}\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
