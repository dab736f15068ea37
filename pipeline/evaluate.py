#!/usr/bin/env python
"""Stage: score a checkpoint (ours, or the authors' fine-tuned .pth) on a fold with the 2-clip test protocol.

    python -m pipeline.evaluate --checkpoint dfew_fold1.pth --index data/shards/dfew/index.parquet --fold 1 \\
        --out runs/eval/dfew_official/fold1

    python -m pipeline.evaluate --params params.yaml --released dfew --checkpoint data/released/dfew_fold1.pth \
        --index data/shards/paper/dfew/index.parquet --fold 1 --out runs/paper/evaluate_released/dfew/fold1

Prints {"uar", "war", "num_samples"} as JSON. Logs nothing to MLflow. With --released DATASET the temporal
stride (datasets.<DATASET>.stride) and the official loader's options (released.finetuned.<DATASET>.model:
num_heads, region_size, model_kwargs) come from --params; flags given here win. Without it --params is only
validated.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from maedfer.constants import DEFAULT_STRIDE
from pipeline._stage import add_shared_flags, load_params, stage_main, stage_parser

if TYPE_CHECKING:
    from maedfer.workflow.profile import Profile

NAME = "evaluate"


def build_parser() -> argparse.ArgumentParser:
    """The evaluate command's parser."""
    p = stage_parser(NAME, __doc__)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--index", required=True)
    p.add_argument("--fold", type=int, default=None, help="test split of this fold (default: every clip)")
    add_shared_flags(p, "output folder (metrics.json, predictions.csv)",
                     params_help="params file (validated; with --released: the stride and loader options)",
                     mlflow_help="accepted for uniformity; evaluate logs nothing to MLflow")
    p.add_argument("--released", metavar="DATASET", help="stride and official loader options from --params")
    p.add_argument("--stride", type=int, default=None, help=f"temporal stride (default {DEFAULT_STRIDE})")
    p.add_argument("--num-heads", type=int, default=None, help="official checkpoints: attention heads (default: "
                   "from the width)")
    p.add_argument("--region-size", type=int, nargs=3, default=None, metavar=("T", "H", "W"),
                   help="official LGI-Former checkpoints: region size (default: from the checkpoint's args)")
    p.add_argument("--model-kwargs", type=json.loads, default=None, metavar="JSON",
                   help="official checkpoints: constructor arguments, e.g. '{\"img_size\": 96, \"num_frames\": 8}'")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-workers", type=int, default=4)
    p.add_argument("--trust-pickle", action="store_true", help="official checkpoints that need full unpickling")
    return p


def official_options(args: argparse.Namespace, profile: Profile | None) -> tuple[int, dict[str, Any]]:
    """The stride and the official loader's options: flags > the params file (``--released``) > defaults."""
    stride, official = DEFAULT_STRIDE, {}
    if args.released:
        if profile is None:
            raise ValueError("--released reads the params file; pass --params too")
        profile.require_dataset(args.released)
        stride = profile.params.datasets[args.released].stride
        official = dict(profile.released_finetuned.get(args.released, {}).get("model", {}))
    for key in ("num_heads", "region_size", "model_kwargs"):
        if getattr(args, key) is not None:
            official[key] = getattr(args, key)
    if official.get("region_size") is not None:
        official["region_size"] = tuple(official["region_size"])
    return (args.stride if args.stride is not None else stride), official


def run(args: argparse.Namespace) -> int:
    """Evaluate as ``args`` say; prints a JSON summary."""
    from maedfer.train.evaluate import evaluate

    profile = load_params(args)
    stride, official = official_options(args, profile)
    metrics = evaluate(args.checkpoint, args.index, args.fold, args.out, stride=stride,
                       batch_size=args.batch_size, num_workers=args.num_workers, trust_pickle=args.trust_pickle,
                       **official)
    if metrics:
        print(json.dumps({"uar": metrics["uar"], "war": metrics["war"], "num_samples": metrics["num_samples"]}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the evaluate stage; exit status 2 with one line for a user error."""
    return stage_main(NAME, build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
