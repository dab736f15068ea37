#!/usr/bin/env python
"""Stage: MAE-DFER pre-training on a shard index (single process, or multi-GPU under torchrun).

    python pipeline/pretrain.py --index data/shards/voxceleb2/index.parquet --out runs/pretrain/base
    python pipeline/pretrain.py --params params.yaml --pretraining mae_dfer --index ... --out ...   # as the DAG does
    torchrun --nproc_per_node 4 pipeline/pretrain.py --index ... --out ... --batch-size 32 --accum-steps 1

Defaults are the paper's recipe; a killed run continues from its last checkpoint (``--no-resume`` to restart).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, fields
from pathlib import Path

from maedfer.logging_utils import setup_logging
from maedfer.settings import PretrainConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = PretrainConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", required=True, help="index.parquet of the pre-training shards")
    p.add_argument("--out", required=True, help="run folder (checkpoints/, model.pt)")
    p.add_argument("--params", default=None, help="params file (params.yaml): settings of --pretraining")
    p.add_argument("--pretraining", default=None, help="named pre-training in the params file (pretrain.runs)")
    # Settings: the dataclass defaults (the paper's recipe), then the params file, then these flags.
    p.add_argument("--arch", default=argparse.SUPPRESS, help=f"model factory ({d.arch})")
    p.add_argument("--arch-kwargs", default=argparse.SUPPRESS,
                   help='JSON, e.g. \'{"region_size": [2, 5, 10], "mask_ratio": 0.9}\'')
    for name in ("epochs", "warmup_epochs", "batch_size", "accum_steps", "stride", "num_workers", "seed",
                 "save_every_steps", "max_steps_per_epoch", "preview_every_epochs"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=argparse.SUPPRESS,
                       help=f"({getattr(d, name)})")
    for name in ("base_lr", "base_min_lr", "weight_decay", "clip_grad"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=argparse.SUPPRESS,
                       help=f"({getattr(d, name)})")
    p.add_argument("--compile", action="store_true", default=argparse.SUPPRESS)
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--experiment", default="maedfer-pretrain", help="MLflow experiment")
    p.add_argument("--no-tracking", action="store_true")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> PretrainConfig:
    """PretrainConfig from the params file's named pre-training (if any), overridden by explicit flags."""
    names = {f.name for f in fields(PretrainConfig)}
    values: dict = {}
    if args.params or args.pretraining:
        if not (args.params and args.pretraining):
            raise ValueError("--params and --pretraining go together")
        from maedfer.workflow.profile import load_profile

        profile = load_profile(args.params)
        if args.pretraining not in profile.data["pretrain"]["runs"]:
            raise ValueError(f"{args.params}: no pre-training {args.pretraining!r} in pretrain.runs "
                             f"({', '.join(profile.data['pretrain']['runs'])})")
        values.update({k: v for k, v in profile.pretrain_settings(args.pretraining).items() if k in names})
    explicit = {k: v for k, v in vars(args).items() if k in names}
    if "arch_kwargs" in explicit:
        explicit["arch_kwargs"] = json.loads(explicit["arch_kwargs"])
    values.update(explicit)
    return PretrainConfig(**values)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    from maedfer.tracking import Tracker, run_tags
    from maedfer.train.pretrain_loop import pretrain

    main_rank = int(os.environ.get("RANK", "0")) == 0  # torchrun sets RANK; read before the process group exists

    try:
        cfg = resolve_config(args)
        if not Path(args.index).is_file():
            raise FileNotFoundError(f"{args.index}: index not found; build it with pipeline/ingest.py")
        with Tracker(args.experiment, run_name=args.pretraining or Path(args.out).name, params=asdict(cfg),
                     tags=run_tags(dataset="pretrain", index=str(args.index)),
                     enabled=not args.no_tracking and main_rank) as tracker:
            summary = pretrain(cfg, args.index, args.out, resume=not args.no_resume, tracker=tracker)
    except (ValueError, FileNotFoundError, json.JSONDecodeError) as exc:
        sys.stderr.write(f"pretrain: error: {exc}\n")
        return 2
    if main_rank:
        print(json.dumps({k: v for k, v in summary.items() if k != "losses"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
