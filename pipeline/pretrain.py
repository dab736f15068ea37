#!/usr/bin/env python
"""Stage: MAE-DFER pre-training on a shard index (single process, or multi-GPU under torchrun).

    python -m pipeline.pretrain --index data/shards/voxceleb2/index.parquet --out runs/pretrain/base
    python -m pipeline.pretrain --params params.yaml --pretraining mae_dfer --index ... --out ...   # as the DAG does
    torchrun --nproc_per_node 4 -m pipeline.pretrain --index ... --out ... --batch-size 32 --accum-steps 1

Settings: explicit flags > the params file's pretraining > the paper's recipe (the defaults).
A killed run continues from its last checkpoint (``--no-resume`` to restart).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from maedfer.logging_utils import setup_logging
from maedfer.settings import PretrainConfig
from maedfer.settings.resolve import resolve_config
from maedfer.workflow.profile import Profile
from pipeline._stage import (
    add_setting_flags,
    add_shared_flags,
    explicit,
    load_params,
    run_stage,
    stage_parser,
    tracking_enabled,
)
from pipeline._training import require_index, settings_from_json

NAME = "pretrain"


def build_parser() -> argparse.ArgumentParser:
    """The pretrain command's parser (settings flags stay out of the args unless typed)."""
    d = PretrainConfig()
    p = stage_parser(NAME, __doc__)
    p.add_argument("--index", required=True, help="index.parquet of the pre-training shards")
    add_shared_flags(p, "run folder (checkpoints/, model.pt)",
                     params_help="params file (params.yaml): settings of --pretraining",
                     mlflow_help="MLflow experiment (default: maedfer-pretrain)")
    p.add_argument("--pretraining", default=None, help="named pre-training in the params file (pretrain.runs)")
    p.add_argument("--arch", default=argparse.SUPPRESS, help=f"model factory ({d.arch})")
    p.add_argument("--arch-kwargs", default=argparse.SUPPRESS,
                   help='JSON, e.g. \'{"region_size": [2, 5, 10], "mask_ratio": 0.9}\'')
    add_setting_flags(p, PretrainConfig, ("epochs", "warmup_epochs", "batch_size", "accum_steps", "stride",
                                          "num_workers", "seed", "save_every_steps", "max_steps_per_epoch",
                                          "preview_every_epochs"), int)
    add_setting_flags(p, PretrainConfig, ("base_lr", "base_min_lr", "weight_decay", "clip_grad"), float)
    p.add_argument("--compile", action="store_true", default=argparse.SUPPRESS)
    p.add_argument("--no-resume", action="store_true")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed command line."""
    return build_parser().parse_args(argv)


def resolve_config_from_args(args: argparse.Namespace, profile: Profile | None) -> PretrainConfig:
    """PretrainConfig: explicit flags > the params file's named pre-training (if any) > defaults."""
    flags = settings_from_json(explicit(args, PretrainConfig))
    if (profile is None) != (args.pretraining is None):
        raise ValueError("--params and --pretraining go together")
    if profile is None:
        return resolve_config(PretrainConfig, None, flags)
    return profile.pretrain_config(args.pretraining, flags)


def run(args: argparse.Namespace) -> int:
    """Pre-train as ``args`` say; the main process prints a JSON summary."""
    from maedfer.tracking import Tracker, run_tags
    from maedfer.train.pretrain_loop import pretrain

    main_rank = int(os.environ.get("RANK", "0")) == 0  # torchrun sets RANK; read before the process group exists
    profile = load_params(args)
    cfg = resolve_config_from_args(args, profile)
    require_index(args.index)
    experiment = args.mlflow_experiment or "maedfer-pretrain"
    with Tracker(experiment, run_name=args.pretraining or Path(args.out).name, params=asdict(cfg),
                 tags=run_tags(dataset="pretrain", index=str(args.index)),
                 enabled=tracking_enabled(args, profile) and main_rank) as tracker:
        summary = pretrain(cfg, args.index, args.out, resume=not args.no_resume, tracker=tracker)
    if main_rank:
        print(json.dumps({k: v for k, v in summary.items() if k != "losses"}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the pretrain stage; exit status 2 with one line for a user error."""
    args = parse_args(argv)
    setup_logging(args.verbose)
    return run_stage(NAME, run, args)


if __name__ == "__main__":
    sys.exit(main())
