"""Profile one training step of a model on GPU and print the top CUDA kernels (torch.profiler)."""

from __future__ import annotations

import argparse
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from maedfer.models import create_model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="lgi_former_base_patch16_160")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rows", type=int, default=25)
    args = p.parse_args(argv)
    model = create_model(args.model, num_classes=7).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.randn(args.batch, 3, 16, 160, 160, device="cuda")
    y = torch.randint(0, 7, (args.batch,), device="cuda")

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    sys.stdout.write(prof.key_averages().table(sort_by="cuda_time_total", row_limit=args.rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
