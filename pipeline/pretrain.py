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

from maedfer.settings import PretrainConfig
from maedfer.workflow.profile import Profile
from pipeline import _stage
from pipeline._training import (
    add_precision_flag,
    process_group_left,
    require_index,
    training_config,
    training_parser,
)

NAME = "pretrain"


def build_parser() -> argparse.ArgumentParser:
    """The pretrain command's parser (settings flags stay out of the args unless typed)."""
    p = training_parser(NAME, __doc__, PretrainConfig().arch, '\'{"region_size": [2, 5, 10], "mask_ratio": 0.9}\'',
                        out_help="run folder (checkpoints/, model.pt)",
                        params_help="params file (params.yaml): settings of --pretraining",
                        mlflow_help="MLflow experiment (default: maedfer-pretrain)")
    p.add_argument("--index", required=True, help="index.parquet of the pre-training shards")
    p.add_argument("--pretraining", default=None, help="named pre-training in the params file (pretrain.runs)")
    _stage.add_setting_flags(p, PretrainConfig, ("epochs", "warmup_epochs", "batch_size", "accum_steps", "stride",
                                                 "num_workers", "seed", "save_every_steps", "max_steps_per_epoch",
                                                 "preview_every_epochs", "cache_mb"), int, helps={
        "cache_mb": "MiB of clips' JPEG bytes kept in memory per process after their first read (0: none)"})
    _stage.add_setting_flags(p, PretrainConfig, ("total_batch", "schedule_epochs"), int, helps={
        "total_batch": "clips per update; the micro-batches per update are derived from it",
        "schedule_epochs": "length of the cosine schedule in epochs (the run stops after --epochs)"})
    _stage.add_setting_flags(p, PretrainConfig, ("base_lr", "base_min_lr", "weight_decay", "clip_grad"), float)
    add_precision_flag(p)
    p.add_argument("--decay-region-tokens", action="store_true", default=argparse.SUPPRESS,
                   help="weight decay on the encoder's region tokens too, as the authors' pre-training")
    p.add_argument("--compile", action="store_true", default=argparse.SUPPRESS)
    return p


def resolve_config_from_args(args: argparse.Namespace, profile: Profile | None) -> PretrainConfig:
    """PretrainConfig: explicit flags > the params file's named pre-training (if any) > defaults."""
    return training_config(PretrainConfig, args, profile, args.pretraining, "--pretraining",
                           lambda prof, flags: prof.pretrain_config(args.pretraining, flags))


def run(args: argparse.Namespace) -> int:
    """Pre-train as ``args`` say; the main process prints a JSON summary."""
    from maedfer.tracking import Tracker, run_tags
    from maedfer.train.pretrain_loop import pretrain

    main_rank = int(os.environ.get("RANK", "0")) == 0  # torchrun sets RANK; read before the process group exists
    profile = _stage.load_params(args)
    cfg = resolve_config_from_args(args, profile)
    require_index(args.index)
    experiment = args.mlflow_experiment or "maedfer-pretrain"
    tracker = Tracker(experiment, run_name=args.pretraining or Path(args.out).name, params=asdict(cfg),
                      tags=run_tags(dataset="pretrain", index=str(args.index)),
                      enabled=_stage.tracking_enabled(args, profile) and main_rank, lazy_start=True)
    with process_group_left(), tracker:  # lazy: a resumed training first re-attaches to its MLflow run
        summary = pretrain(cfg, args.index, args.out, resume=not args.no_resume, tracker=tracker)
    if main_rank:
        print(json.dumps({k: v for k, v in summary.items() if k != "losses"}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the pretrain stage; exit status 2 with one line for a user error."""
    return _stage.stage_main(NAME, build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
