#!/usr/bin/env python
"""Stage: fine-tune on one fold of a dataset, then the 2-clip test; MLflow child run under a dataset parent run.

    python -m pipeline.finetune --dataset dfew --index data/shards/dfew/index.parquet --fold 1 \\
        --init runs/pretrain/lgi_base/model.pt --out runs/finetune/dfew/fold1
    python -m pipeline.finetune --params params.yaml --experiment mae_dfer --dataset dfew --fold 1 \\
        --index ... --init runs/paper/pretrain/mae_dfer/model.pt --out ...        # as the DAG does

Settings: explicit flags > the params file's experiment on --dataset > the paper's recipe (the defaults).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from maedfer.io_utils import write_json_atomic
from maedfer.settings import FinetuneConfig
from maedfer.workflow.profile import Profile
from pipeline import _stage
from pipeline._training import (
    add_precision_flag,
    process_group_left,
    require_index,
    training_config,
    training_parser,
)

NAME = "finetune"


def build_parser() -> argparse.ArgumentParser:
    """The finetune command's parser (settings flags stay out of the args unless typed)."""
    d = FinetuneConfig()
    p = training_parser(NAME, __doc__, d.arch, '\'{"pool": "local"}\'',
                        out_help="fold run folder (model.pt, metrics.json, predictions.csv, ...)",
                        params_help="params file (params.yaml): settings of --experiment",
                        mlflow_help="MLflow experiment (default: maedfer-finetune-<dataset>)")
    p.add_argument("--dataset", required=True, help="dataset name (as in the params file: dfew, ferv39k, ...)")
    p.add_argument("--index", required=True)
    p.add_argument("--fold", type=int, required=True)
    p.add_argument("--experiment", default=None, help="named fine-tuning experiment (finetune.experiments)")
    p.add_argument("--init", default=argparse.SUPPRESS,
                   help="pre-trained model.pt or official checkpoint (default: scratch)")
    _stage.add_setting_flags(p, FinetuneConfig, ("epochs", "warmup_epochs", "batch_size", "stride", "num_workers",
                                                 "seed", "max_steps_per_epoch", "accum_steps", "eval_every",
                                                 "cache_mb"), int, helps={
        "eval_every": "validate every N epochs and after the last (the training is the same)",
        "cache_mb": "MiB of clips' JPEG bytes kept in memory per process after their first read (0: none)"})
    _stage.add_setting_flags(p, FinetuneConfig, ("total_batch",), int, helps={
        "total_batch": "clips per update; the micro-batches per update are derived from it"})
    add_precision_flag(p)
    _stage.add_setting_flags(p, FinetuneConfig, ("base_lr", "base_min_lr", "weight_decay", "layer_decay",
                                                 "drop_path", "head_init_scale", "mixup", "cutmix",
                                                 "label_smoothing"), float)
    p.add_argument("--auto-augment", default=argparse.SUPPRESS,
                   help=f"RandAugment config, or 'none' ({d.auto_augment})")
    p.add_argument("--crop-scale", type=float, nargs=2, default=argparse.SUPPRESS,
                   help=f"random resized crop area range ({d.crop_scale[0]} {d.crop_scale[1]})")
    p.add_argument("--reprob", type=float, default=argparse.SUPPRESS, help=f"random erasing probability ({d.reprob})")
    p.add_argument("--test-best", action="store_true", default=argparse.SUPPRESS,
                   help="also test the best-validation epoch (metrics_best.json); the last epoch is the reported one")
    p.add_argument("--group", default=None, help="parent MLflow run grouping the folds (default: dataset + out parent)")
    return p


def resolve_config_from_args(args: argparse.Namespace, profile: Profile | None) -> FinetuneConfig:
    """FinetuneConfig: explicit flags > the params file's experiment on --dataset (if any) > defaults.

    The params file names the pretraining; the checkpoint path itself comes from --init.
    """
    cfg = training_config(FinetuneConfig, args, profile, args.experiment, "--experiment",
                          lambda prof, flags: prof.finetune_config(args.experiment, args.dataset, flags))
    if profile is None:
        return cfg
    if profile.finetune_settings(args.experiment, args.dataset)["init"] is not None and cfg.init is None:
        raise ValueError(f"{args.params}: experiment {args.experiment!r} starts from a pre-training; "
                         "pass its model.pt with --init")
    return cfg


def run(args: argparse.Namespace) -> int:
    """Fine-tune and test one fold as ``args`` say; the main process prints a JSON summary."""
    from maedfer.tracking import Tracker, find_or_create_parent_run, run_tags
    from maedfer.train.finetune_loop import finetune

    main_rank = int(os.environ.get("RANK", "0")) == 0
    profile = _stage.load_params(args)
    cfg = resolve_config_from_args(args, profile)
    index = require_index(args.index)
    checksum = hashlib.sha256(index.read_bytes()).hexdigest()
    experiment = args.mlflow_experiment or f"maedfer-finetune-{args.dataset}"
    tracking = _stage.tracking_enabled(args, profile) and main_rank
    group = args.group or f"{args.dataset}:{Path(args.out).resolve().parent}"
    parent = find_or_create_parent_run(experiment, group=group, enabled=tracking)
    tracker = Tracker(experiment, run_name=f"fold{args.fold}", parent_run_id=parent, params=asdict(cfg),
                      tags=run_tags(dataset=args.dataset, fold=args.fold, index_checksum=checksum),
                      enabled=tracking, lazy_start=True)
    with process_group_left(), tracker:  # lazy: a resumed training first re-attaches to its MLflow run
        summary = finetune(cfg, index, args.fold, args.out, tracker=tracker, resume=not args.no_resume)
        if tracker.run_id is not None:  # links the aggregated table's fold run to this training run
            write_json_atomic(Path(args.out) / "mlflow_run.json",
                              {"run_id": tracker.run_id, "experiment": experiment, "parent_run_id": parent})
    if tracker.known_run_id is not None and (Path(args.out) / "model.pt").is_file():  # issue 16.3: the fold's model
        from maedfer.tracking.models import log_fold_model_quietly  # bounded; one warning if the store fails

        log_fold_model_quietly(Path(args.out) / "model.pt", run_id=tracker.known_run_id, dataset=args.dataset,
                               experiment=args.experiment or Path(args.out).resolve().parent.parent.name,
                               fold=args.fold, params=asdict(cfg), tracking_uri=tracker.tracking_uri)
    if main_rank:
        m = summary["metrics"]
        print(json.dumps({"dataset": args.dataset, "fold": args.fold, "uar": m.get("uar"), "war": m.get("war")}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the finetune stage; exit status 2 with one line for a user error."""
    return _stage.stage_main(NAME, build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
