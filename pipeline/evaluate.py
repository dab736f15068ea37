#!/usr/bin/env python
"""Stage: score a checkpoint (ours, or the authors' fine-tuned .pth) on a fold with the 2-clip test protocol.

    python -m pipeline.evaluate --checkpoint dfew_fold1.pth --index data/shards/dfew/index.parquet --fold 1 \\
        --out runs/eval/dfew_official/fold1

Prints {"uar", "war", "num_samples"} as JSON. Logs nothing to MLflow; --params is only validated.
"""

from __future__ import annotations

import argparse
import json
import sys

from maedfer.constants import DEFAULT_STRIDE
from pipeline._stage import add_shared_flags, load_params, stage_main, stage_parser

NAME = "evaluate"


def build_parser() -> argparse.ArgumentParser:
    """The evaluate command's parser."""
    p = stage_parser(NAME, __doc__)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--index", required=True)
    p.add_argument("--fold", type=int, default=None, help="test split of this fold (default: every clip)")
    add_shared_flags(p, "output folder (metrics.json, predictions.csv)",
                     params_help="params file (validated; this stage reads no settings from it)",
                     mlflow_help="accepted for uniformity; evaluate logs nothing to MLflow")
    p.add_argument("--stride", type=int, default=DEFAULT_STRIDE)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-workers", type=int, default=4)
    p.add_argument("--trust-pickle", action="store_true", help="official checkpoints that need full unpickling")
    return p


def run(args: argparse.Namespace) -> int:
    """Evaluate as ``args`` say; prints a JSON summary."""
    from maedfer.train.evaluate import evaluate

    load_params(args)
    metrics = evaluate(args.checkpoint, args.index, args.fold, args.out, stride=args.stride,
                       batch_size=args.batch_size, num_workers=args.num_workers, trust_pickle=args.trust_pickle)
    if metrics:
        print(json.dumps({"uar": metrics["uar"], "war": metrics["war"], "num_samples": metrics["num_samples"]}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the evaluate stage; exit status 2 with one line for a user error."""
    return stage_main(NAME, build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
