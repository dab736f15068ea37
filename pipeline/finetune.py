#!/usr/bin/env python
"""Stage: fine-tune on one fold of a dataset, then the 2-clip test; MLflow child run under a dataset parent run.

    python pipeline/finetune.py --dataset dfew --index data/shards/dfew/index.parquet --fold 1 \\
        --init runs/pretrain/lgi_base/model.pt --out runs/finetune/dfew/fold1
    python pipeline/finetune.py --params params.yaml --experiment mae_dfer --dataset dfew --fold 1 \\
        --index ... --init runs/paper/pretrain/mae_dfer/model.pt --out ...        # as the DAG does
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import asdict, fields
from pathlib import Path

from maedfer.io_utils import write_json_atomic
from maedfer.logging_utils import setup_logging
from maedfer.settings import FinetuneConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = FinetuneConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, help="dataset name (as in the params file: dfew, ferv39k, ...)")
    p.add_argument("--index", required=True)
    p.add_argument("--fold", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--params", default=None, help="params file (params.yaml): settings of --experiment")
    p.add_argument("--experiment", default=None, help="named fine-tuning experiment (finetune.experiments)")
    # Settings: the dataclass defaults (the paper's recipe), then the params file, then these flags.
    p.add_argument("--arch", default=argparse.SUPPRESS, help=f"model factory ({d.arch})")
    p.add_argument("--arch-kwargs", default=argparse.SUPPRESS,
                   help="JSON constructor arguments, e.g. '{\"pool\": \"local\"}'")
    p.add_argument("--init", default=argparse.SUPPRESS,
                   help="pre-trained model.pt or official checkpoint (default: scratch)")
    for name in ("epochs", "warmup_epochs", "batch_size", "stride", "num_workers", "seed", "max_steps_per_epoch"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=argparse.SUPPRESS,
                       help=f"({getattr(d, name)})")
    for name in ("base_lr", "base_min_lr", "weight_decay", "layer_decay", "drop_path", "mixup", "cutmix",
                 "label_smoothing"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=argparse.SUPPRESS,
                       help=f"({getattr(d, name)})")
    p.add_argument("--auto-augment", default=argparse.SUPPRESS,
                   help=f"RandAugment config, or 'none' ({d.auto_augment})")
    p.add_argument("--crop-scale", type=float, nargs=2, default=argparse.SUPPRESS,
                   help=f"random resized crop area range ({d.crop_scale[0]} {d.crop_scale[1]})")
    p.add_argument("--reprob", type=float, default=argparse.SUPPRESS, help=f"random erasing probability ({d.reprob})")
    p.add_argument("--test-best", action="store_true", default=argparse.SUPPRESS,
                   help="also test the best-validation epoch (metrics_best.json); the last epoch is the reported one")
    p.add_argument("--group", default=None, help="parent MLflow run grouping the folds (default: dataset + out parent)")
    p.add_argument("--mlflow-experiment", default=None, help="MLflow experiment (default: maedfer-finetune-<dataset>)")
    p.add_argument("--no-tracking", action="store_true")
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> FinetuneConfig:
    """FinetuneConfig from the params file's experiment on --dataset (if any), overridden by explicit flags.
    The params file names the pretraining; the checkpoint path itself comes from --init."""
    names = {f.name for f in fields(FinetuneConfig)}
    values: dict = {}
    if args.params or args.experiment:
        if not (args.params and args.experiment):
            raise ValueError("--params and --experiment go together")
        from maedfer.workflow.profile import load_profile

        profile = load_profile(args.params)
        if args.experiment not in profile.data["finetune"]["experiments"]:
            raise ValueError(f"{args.params}: no experiment {args.experiment!r} in finetune.experiments "
                             f"({', '.join(profile.data['finetune']['experiments'])})")
        if args.dataset not in profile.datasets:
            raise ValueError(f"{args.params}: no dataset {args.dataset!r} in datasets")
        settings = profile.finetune_settings(args.experiment, args.dataset)
        if settings.pop("init") is not None and "init" not in vars(args):
            raise ValueError(f"{args.params}: experiment {args.experiment!r} starts from a pre-training; "
                             "pass its model.pt with --init")
        values.update({k: v for k, v in settings.items() if k in names})
    explicit = {k: v for k, v in vars(args).items() if k in names}
    if "arch_kwargs" in explicit:
        explicit["arch_kwargs"] = json.loads(explicit["arch_kwargs"])
    if explicit.get("auto_augment") in ("none", "None", ""):
        explicit["auto_augment"] = None
    values.update(explicit)
    if "crop_scale" in values:
        values["crop_scale"] = tuple(values["crop_scale"])
    return FinetuneConfig(**values)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    from maedfer.tracking import Tracker, find_or_create_parent_run, run_tags
    from maedfer.train.finetune_loop import finetune

    main_rank = int(os.environ.get("RANK", "0")) == 0
    try:
        cfg = resolve_config(args)
        index = Path(args.index)
        if not index.is_file():
            raise FileNotFoundError(f"{index}: index not found; build it with pipeline/ingest.py")
        checksum = hashlib.sha256(index.read_bytes()).hexdigest()
        experiment = args.mlflow_experiment or f"maedfer-finetune-{args.dataset}"
        tracking = not args.no_tracking and main_rank
        group = args.group or f"{args.dataset}:{Path(args.out).resolve().parent}"
        parent = find_or_create_parent_run(experiment, group=group, enabled=tracking)
        with Tracker(experiment, run_name=f"fold{args.fold}", parent_run_id=parent, params=asdict(cfg),
                     tags=run_tags(dataset=args.dataset, fold=args.fold, index_checksum=checksum),
                     enabled=tracking) as tracker:
            summary = finetune(cfg, index, args.fold, args.out, tracker=tracker, resume=not args.no_resume)
            if tracker.run_id is not None:  # links the aggregated table's fold run to this training run
                write_json_atomic(Path(args.out) / "mlflow_run.json",
                                  {"run_id": tracker.run_id, "experiment": experiment, "parent_run_id": parent})
    except (ValueError, FileNotFoundError, json.JSONDecodeError) as exc:
        sys.stderr.write(f"finetune: error: {exc}\n")
        return 2
    if main_rank:
        m = summary["metrics"]
        print(json.dumps({"dataset": args.dataset, "fold": args.fold, "uar": m.get("uar"), "war": m.get("war")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
