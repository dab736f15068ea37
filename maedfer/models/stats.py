"""Parameters and FLOPs of every variant in the paper's Tables 3, 4, 9 and 10, beside the paper.

``paper`` figures are transcribed from the paper (params in M, FLOPs in G, batch 1,
16x160x160, 7 classes). Ours are counted exactly (params) and analytically (FLOPs, see
:mod:`maedfer.models.flops`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from maedfer.models.flops import classifier_flops, count_params
from maedfer.models.registry import create_model


@dataclass(frozen=True)
class Variant:
    """One model variant of Tables 9-10 with the paper's parameter and FLOP counts."""
    table: str
    label: str
    arch: str
    paper_params_m: float
    paper_gflops: float
    kwargs: dict[str, Any] = field(default_factory=dict)


LGI = "lgi_former_base_patch16_160"
VIT = "vit_base_patch16_160"

VARIANTS: tuple[Variant, ...] = (
    Variant("3", "intra", LGI, 51.2, 42.7, dict(use_inter=False, use_lgi=False)),
    Variant("3", "intra + inter", LGI, 68.0, 42.8, dict(use_lgi=False)),
    Variant("3", "intra + LGI", LGI, 68.1, 49.6, dict(use_inter=False)),
    Variant("3", "intra + inter + LGI (LGI-Former)", LGI, 84.9, 49.8),
    Variant("3", "ViT (global space-time)", VIT, 86.2, 80.8),
    Variant("4", "region 1x5x10 (M=16)", LGI, 84.9, 49.8, dict(region_size=(1, 5, 10))),
    Variant("4", "region 2x2x10 (M=20)", LGI, 84.9, 50.0, dict(region_size=(2, 2, 10))),
    Variant("4", "region 2x5x10 (M=8)", LGI, 84.9, 49.8, dict(region_size=(2, 5, 10))),
    Variant("4", "region 2x10x10 (M=4)", LGI, 84.9, 50.7, dict(region_size=(2, 10, 10))),
    Variant("4", "region 4x5x10 (M=4)", LGI, 84.9, 50.7, dict(region_size=(4, 5, 10))),
    Variant("9", "tiny (256-d)", "lgi_former_tiny_patch16_160", 21.5, 13.0),
    Variant("9", "small (384-d)", "lgi_former_small_patch16_160", 47.9, 28.4),
    Variant("9", "base (512-d)", LGI, 84.9, 49.8),
    Variant("10", "VideoMAE motion only", VIT, 86.2, 80.8),
    Variant("10", "VideoMAE appearance only", VIT, 86.2, 80.8),
    Variant("10", "VideoMAE appearance + motion", VIT, 86.2, 80.8),
)


def measure(variant: Variant, num_classes: int = 7) -> tuple[int, int]:
    """(parameters, FLOPs) of a variant, built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        model = create_model(variant.arch, num_classes=num_classes, init=False, **variant.kwargs)
    return count_params(model), classifier_flops(model)


def stats_table(variants: tuple[Variant, ...] = VARIANTS) -> list[dict[str, Any]]:
    """Parameters and GFLOPs of every variant next to the paper's."""
    rows = []
    cache: dict[tuple, tuple[int, int]] = {}
    for v in variants:
        key = (v.arch, tuple(sorted(v.kwargs.items())))
        if key not in cache:
            cache[key] = measure(v)
        params, flops = cache[key]
        rows.append(
            dict(
                table=v.table,
                variant=v.label,
                params=params,
                params_m=params / 1e6,
                paper_params_m=v.paper_params_m,
                gflops=flops / 1e9,
                paper_gflops=v.paper_gflops,
            )
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`stats_table` as a fixed-width text table."""
    head = (
        f"{'table':>5}  {'variant':<34} {'params':>12} {'(M)':>7} {'paper':>6}  {'GFLOPs':>7} {'paper':>6} {'diff':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['table']:>5}  {r['variant']:<34} {r['params']:>12,} {r['params_m']:>7.2f} "
            f"{r['paper_params_m']:>6.1f}  "
            f"{r['gflops']:>7.2f} {r['paper_gflops']:>6.1f} {r['gflops'] - r['paper_gflops']:>+6.2f}"
        )
    return "\n".join(lines)
