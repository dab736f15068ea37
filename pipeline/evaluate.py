#!/usr/bin/env python
"""Stage: score a checkpoint (ours, or the authors' fine-tuned .pth) on a fold with the 2-clip test protocol.

    python pipeline/evaluate.py --checkpoint dfew_fold1.pth --index data/shards/dfew/index.parquet --fold 1 \\
        --out runs/eval/dfew_official/fold1
"""

from __future__ import annotations

import argparse
import json
import sys

from maedfer.logging_utils import setup_logging


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--index", required=True)
    p.add_argument("--fold", type=int, default=None, help="test split of this fold (default: every clip)")
    p.add_argument("--out", required=True)
    p.add_argument("--stride", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-workers", type=int, default=4)
    p.add_argument("--trust-pickle", action="store_true", help="official checkpoints that need full unpickling")
    p.add_argument("-v", "--verbose", action="count", default=0)
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    from maedfer.train.evaluate import evaluate

    try:
        metrics = evaluate(args.checkpoint, args.index, args.fold, args.out, stride=args.stride,
                           batch_size=args.batch_size, num_workers=args.num_workers, trust_pickle=args.trust_pickle)
    except (ValueError, FileNotFoundError) as exc:
        sys.stderr.write(f"evaluate: error: {exc}\n")
        return 2
    if metrics:
        print(json.dumps({"uar": metrics["uar"], "war": metrics["war"], "num_samples": metrics["num_samples"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
