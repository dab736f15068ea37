"""Operator count of one eager training step (forward + backward), per model and per block.

Counts the ATen operators that run (through a TorchDispatchMode), split into the ones that launch work
on a GPU (matmuls, attention, norms, element-wise, copies, random draws) and metadata-only ones (views,
transposes, slices, detach). In eager mode every counted compute op is at least one kernel launch, so the
compute count per block is the launch overhead that CUDA graphs / compilation must remove. Runs on any
device; on CPU it is a few seconds per model at batch 1.

    python benchmarks/kernel_count.py                                 # base models, CPU, batch 1
    python benchmarks/kernel_count.py --models lgi_former_test vit_test
"""

from __future__ import annotations

import argparse
import collections
import sys

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from maedfer.models import create_model

# Operators that only change metadata (no kernel on a GPU).
METADATA_OPS = frozenset({
    "aten.view", "aten._unsafe_view", "aten.t", "aten.detach", "aten.permute", "aten.slice", "aten.select",
    "aten.unsqueeze", "aten.squeeze", "aten.expand", "aten.unbind", "aten.as_strided", "aten.alias",
    "aten.transpose", "aten.reshape", "aten.split", "aten.split_with_sizes", "aten.chunk",
})


class OpCounter(TorchDispatchMode):
    """Counts every ATen operator dispatched while active."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: D105
        self.counts[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def count_step(name: str, batch: int, device: torch.device) -> tuple[collections.Counter, int]:
    """Operator counts of one forward + backward of ``name`` and its number of encoder blocks."""
    torch.manual_seed(0)
    pretrain = name.startswith("pretrain_")
    model = (create_model(name) if pretrain else create_model(name, num_classes=7)).to(device).train()
    encoder = model.encoder
    depth = len(encoder.blocks)
    pe = encoder.patch_embed
    x = torch.randn(batch, 3, pe.num_frames, pe.img_size, pe.img_size, device=device)
    with OpCounter() as counter:
        if pretrain:
            mask = model.sample_mask(batch, device=device)
            loss = model.loss(x, model(x, mask), mask)["loss"]
        else:
            loss = model(x).float().logsumexp(-1).mean()
        loss.backward()
    return counter.counts, depth


def main(argv: list[str] | None = None) -> int:
    """Print one row per model: compute ops, metadata ops, blocks, compute ops per block."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["lgi_former_base_patch16_160", "vit_base_patch16_160",
                                                     "pretrain_lgi_former_base_patch16_160",
                                                     "pretrain_vit_base_patch16_160"])
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--top", type=int, default=0, help="also list the N most frequent compute ops per model")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    sys.stdout.write(f"# eager forward + backward, batch {args.batch_size}, {device}\n")
    sys.stdout.write(f"{'model':<40} {'compute ops':>11} {'metadata ops':>12} {'blocks':>6} {'compute/block':>13}\n")
    for name in args.models:
        counts, depth = count_step(name, args.batch_size, device)
        compute = {k: v for k, v in counts.items() if k not in METADATA_OPS}
        n_compute, n_meta = sum(compute.values()), sum(counts.values()) - sum(compute.values())
        sys.stdout.write(f"{name:<40} {n_compute:>11} {n_meta:>12} {depth:>6} {n_compute / depth:>13.1f}\n")
        if args.top:
            top = sorted(compute.items(), key=lambda kv: -kv[1])[: args.top]
            sys.stdout.write("    " + ", ".join(f"{k.removeprefix('aten.')} {v}" for k, v in top) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
