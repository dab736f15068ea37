"""``maedfer model-stats``: parameters and FLOPs of the paper's variants beside the paper's figures."""

from __future__ import annotations

import argparse
import json
import sys

from maedfer.commands import add_command


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``maedfer model-stats``."""
    p = add_command(sub, "model-stats")
    p.add_argument("--table", choices=["3", "4", "9", "10"], action="append", help="only these tables")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--pretrain", action="store_true", help="also count the pre-training model (90%% masking)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the parameter and FLOP counts (a table, or JSON with --json)."""
    from maedfer.models.stats import VARIANTS, format_table, stats_table

    variants = tuple(v for v in VARIANTS if not args.table or v.table in args.table)
    rows = stats_table(variants)
    if args.pretrain:
        from maedfer.models.flops import count_params, pretrain_flops
        from maedfer.models.registry import create_model

        model = create_model("pretrain_lgi_former_base_patch16_160", init=False).eval()
        extra = dict(
            table="-",
            variant="pre-training (LGI base + decoder, 90%)",
            params=count_params(model),
            params_m=count_params(model) / 1e6,
            paper_params_m=float("nan"),
            gflops=pretrain_flops(model) / 1e9,
            paper_gflops=float("nan"),
        )
        rows.append(extra)
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        sys.stdout.write("Batch 1, 16x160x160 clip, 7 classes; FLOPs = multiply-adds (fvcore convention)\n")
        sys.stdout.write(format_table(rows) + "\n")
    return 0
