#!/usr/bin/env python
"""Stage: the paper's figures (Fig. 4 reconstructions, Fig. 5 t-SNE), confusion matrices and training curves.

    python -m pipeline.figures fig4 --checkpoint runs/pretrain/base/model.pt \\
        --index data/shards/voxceleb2/index.parquet --out results/fig4
        -> results/fig4/fig4-mask0.75.png, fig4-mask0.90.png (1100 x 625 px), fig4.json
    python -m pipeline.figures fig5 --checkpoint runs/finetune/dfew/fold1/model.pt \\
        --index data/shards/dfew/index.parquet --fold 1 --out results/fig5/dfew_fold1.png
        -> dfew_fold1.png (800 x 600 px), dfew_fold1.npz
    python -m pipeline.figures confusion --runs runs/finetune/dfew/fold{1,2,3,4,5} --out results/dfew_confusion.png
        -> dfew_confusion.png (620 x 620 px for 7 classes), dfew_confusion.json
    python -m pipeline.figures curves --runs runs/finetune/dfew/fold{1,2,3,4,5} --out results/dfew_curves.png
        -> dfew_curves.png (1200 x 450 px)

Every sub-command takes the stage flags --params (its mlflow section: the experiment and the tracking
switch where the flags leave them out), --out, --mlflow-experiment (log the outputs as artifacts of a run;
default: off), --no-tracking and -v.
Prints a JSON summary on stdout. Bad input: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from maedfer.constants import DEFAULT_STRIDE
from pipeline._stage import SHARED_DESTS, add_shared_flags, load_params, stage_main, stage_parser, tracking_enabled

NAME = "figures"
_MLFLOW_HELP = "also log the outputs as artifacts of a run in this MLflow experiment (default: off)"


def build_parser() -> argparse.ArgumentParser:
    """The figures command's parser: one sub-command per figure, each with the stage flags."""
    p = stage_parser(NAME, __doc__)
    sub = p.add_subparsers(dest="figure", required=True, metavar="FIGURE")

    def common(sp: argparse.ArgumentParser, out_help: str) -> None:
        add_shared_flags(sp, out_help, params_help="params file: its mlflow section (experiment, tracking)",
                         mlflow_help=_MLFLOW_HELP)

    f4 = sub.add_parser("fig4", help="reconstructions of a pre-training model at several mask ratios")
    f4.add_argument("--checkpoint", required=True, help="pre-training model.pt (python -m pipeline.pretrain)")
    f4.add_argument("--index", required=True, help="index.parquet of the clips")
    f4.add_argument("--ratios", type=float, nargs="+", default=[0.75, 0.9])
    which = f4.add_mutually_exclusive_group()
    which.add_argument("--clip", default=None, help="clip_id to show (default: drawn with --seed)")
    which.add_argument("--clip-index", type=int, default=None, help="position of the clip in the selection")
    f4.add_argument("--fold", type=int, default=None, help="select the --split clips of this fold (default: all)")
    f4.add_argument("--split", choices=("train", "test"), default="test")
    f4.add_argument("--motion", choices=("gray", "magnitude"), default="gray", help="motion row style")
    f4.add_argument("--stride", type=int, default=DEFAULT_STRIDE)
    f4.add_argument("--seed", type=int, default=0)
    f4.add_argument("--device", default="auto", help="cpu, cuda or auto")
    common(f4, "output folder")

    f5 = sub.add_parser("fig5", help="t-SNE of a fine-tuned model's test-clip embeddings")
    f5.add_argument("--checkpoint", required=True, help="fine-tuned model.pt (python -m pipeline.finetune)")
    f5.add_argument("--index", required=True)
    f5.add_argument("--fold", type=int, default=None, help="test split of this fold (default: every clip)")
    f5.add_argument("--perplexity", type=float, default=30.0)
    f5.add_argument("--stride", type=int, default=DEFAULT_STRIDE)
    f5.add_argument("--batch-size", type=int, default=16)
    f5.add_argument("--num-workers", type=int, default=0)
    f5.add_argument("--seed", type=int, default=0)
    f5.add_argument("--device", default="auto", help="cpu, cuda or auto")
    common(f5, "PNG path; the .npz goes beside it")

    cm = sub.add_parser("confusion", help="confusion matrix of one fold run, or of several folds pooled")
    cm.add_argument("--runs", nargs="+", required=True, help="fold folders with metrics.json and predictions.csv")
    cm.add_argument("--best", action="store_true", help="use metrics_best.json / predictions_best.csv")
    cm.add_argument("--counts", action="store_true", help="show counts instead of row-normalised recall")
    common(cm, "PNG path; the pooled metrics .json goes beside it")

    cu = sub.add_parser("curves", help="training curves (history.json) of several runs overlaid")
    cu.add_argument("--runs", nargs="+", required=True, help="run folders with history.json")
    cu.add_argument("--labels", nargs="+", default=None, help="legend names (default: folder names)")
    cu.add_argument("--title", default=None)
    common(cu, "PNG path")
    return p


def run(args: argparse.Namespace) -> tuple[dict, list[str]]:
    """Make the figure; returns its JSON summary and the files to log."""
    from maedfer.viz import figures

    if args.figure == "fig4":
        clip = args.clip if args.clip is not None else args.clip_index
        summary = figures.reconstruction_figures(
            args.checkpoint, args.index, args.out, ratios=args.ratios, clip=clip, seed=args.seed, fold=args.fold,
            split=args.split if args.fold is not None else None, stride=args.stride, motion=args.motion,
            device=args.device)
        return summary, [f["png"] for f in summary["figures"]] + [str(Path(args.out) / "fig4.json")]
    if args.figure == "fig5":
        summary = figures.tsne_figure(args.checkpoint, args.index, args.fold, args.out, perplexity=args.perplexity,
                                      seed=args.seed, stride=args.stride, batch_size=args.batch_size,
                                      num_workers=args.num_workers, device=args.device)
        return summary, [summary["png"], summary["npz"]]
    if args.figure == "confusion":
        summary = figures.confusion_figure(args.runs, args.out, suffix="_best" if args.best else "",
                                           normalize=not args.counts)
        brief = {"png": summary["png"], "uar": summary["pooled"]["uar"], "war": summary["pooled"]["war"],
                 "num_samples": summary["pooled"]["num_samples"], "fold_mean": summary["folds"]["mean"],
                 "fold_std": summary["folds"]["std"], "size_px": summary["size_px"]}
        return brief, [summary["png"], str(Path(args.out).with_suffix(".json"))]
    summary = figures.curves_figure(args.runs, args.out, labels=args.labels, title=args.title)
    return summary, [summary["png"]]


def _make(args: argparse.Namespace) -> int:
    from maedfer.tracking import log_figures

    params = load_params(args)
    summary, outputs = run(args)
    experiment = args.mlflow_experiment or (params.params.mlflow.experiment if params else None)
    log_figures(experiment if tracking_enabled(args, params) else None, f"{args.figure}-{Path(args.out).stem}",
                outputs, params={k: v for k, v in vars(args).items() if k not in SHARED_DESTS or k == "out"})
    print(json.dumps(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run a figures sub-command; exit status 2 with one line for a user error."""
    return stage_main(lambda a: f"{NAME} {a.figure}", build_parser(), _make, argv)


if __name__ == "__main__":
    sys.exit(main())
