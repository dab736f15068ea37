#!/usr/bin/env python
"""Stage: aggregate per-fold fine-tuning results into one of the paper's tables, beside the published numbers.

    python -m pipeline.aggregate --table table5 --out results/tables/table5 \\
        --row mae_dfer:dfew:runs/finetune/dfew/fold1,runs/finetune/dfew/fold2,...,runs/finetune/dfew/fold5 \\
        [--row KEY[=PAPER_KEY]:DATASET:FOLD[,FOLD...] ...] [--spec spec.json] [--profile full|demo|...] \\
        [--params params.yaml] [--mlflow-experiment maedfer-tables] [--no-tracking]

--row KEY[=PAPER_KEY]:DATASET:FOLD[,FOLD...]  one of our rows. KEY is compared with the paper row of the
    same key (or PAPER_KEY; "none" for no paper counterpart) in DATASET's section of the table; each FOLD
    is a fold run folder (metrics.json + predictions.csv) or the path of its metrics.json. Repeatable.
--spec spec.json  {"table": ..., "profile": ..., "experiment": ..., "rows": [{"key", "dataset", "folds",
    "paper_key"?}]}; --row adds rows and the other flags override it.
--params FILE  the profile name and MLflow settings (mlflow.experiment, mlflow.tracking) where the flags
    and the spec leave them out.

    python -m pipeline.aggregate --released dfew --out results/paper/released/dfew \
        --fold-run 1:runs/paper/evaluate_released/dfew/fold1 ... --fold-run 5:...

--released DATASET  instead of a paper table: our evaluations of the authors' released fine-tuned checkpoints
    (--fold-run K:FOLDER, one per fold) beside the authors' numbers for them and the paper's; writes
    released_<DATASET>.md/.csv and metrics.json (maedfer.results.released). Logs nothing to MLflow.

Writes to --out: <table>.md/.csv/.tex, <table>_per_class.md/.csv/.tex (Tables 5-7 and 12-14: per-class),
metrics.json (DVC metrics) and confusion/<row>-<dataset>.csv (DVC confusion plots, columns actual,predicted).
Logs one MLflow parent run per (table, profile) with one child run per fold (see maedfer/tracking/).
Prints a JSON summary. Bad input: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from pipeline._stage import add_shared_flags, load_params, stage_main, stage_parser, tracking_enabled

NAME = "aggregate"


def build_parser() -> argparse.ArgumentParser:
    """The aggregate command's parser."""
    p = stage_parser(NAME, __doc__, epilog=True)
    p.add_argument("--table", help="paper table: table2..table14 or fig3 (or from --spec)")
    add_shared_flags(p, "output folder, e.g. results/tables/table5",
                     params_help="params file: profile name and MLflow settings where flags and spec leave them out",
                     mlflow_help="MLflow experiment (default: maedfer-tables)")
    p.add_argument("--row", action="append", default=[], metavar="KEY[=PAPER_KEY]:DATASET:FOLD[,FOLD...]")
    p.add_argument("--spec", help="JSON spec with table, profile, experiment and rows")
    p.add_argument("--profile", default=None, help="run profile named in captions and MLflow tags (default: full)")
    p.add_argument("--released", metavar="DATASET", help="tabulate evaluations of the authors' released checkpoints")
    p.add_argument("--fold-run", action="append", default=[], metavar="K:FOLDER",
                   help="with --released: fold K's evaluation folder (metrics.json + predictions.csv); repeatable")
    return p


def run_released(args: argparse.Namespace) -> int:
    """Tabulate the released checkpoints' fold evaluations (``--released``); prints a JSON summary."""
    from maedfer.results.collect import ResultsInputError
    from maedfer.results.released import write_released_table

    load_params(args)
    if args.table or args.row or args.spec:
        raise ResultsInputError("--released tabulates released checkpoints; it takes --fold-run, not --table/--row/"
                                "--spec")
    runs = {}
    for text in args.fold_run:
        k, sep, folder = text.partition(":")
        if not sep or not k.isdigit() or not folder:
            raise ResultsInputError(f"--fold-run {text!r}: expected K:FOLDER, e.g. 1:runs/paper/evaluate_released/"
                                    "dfew/fold1")
        runs[int(k)] = folder
    paths = write_released_table(args.released, runs, args.out)
    print(json.dumps({"released": args.released, "folds": sorted(runs), "outputs": [str(p) for p in paths]}))
    return 0


def run(args: argparse.Namespace) -> int:
    """Aggregate the table as ``args`` say; prints a JSON summary."""
    from maedfer.results.aggregate import aggregate_table, load_spec, parse_row_arg
    from maedfer.results.collect import ResultsInputError

    if args.released:
        return run_released(args)
    if args.fold_run:
        raise ResultsInputError("--fold-run goes with --released DATASET")
    params = load_params(args)
    spec = load_spec(args.spec) if args.spec else {"rows": []}
    rows = list(spec["rows"]) + [parse_row_arg(r) for r in args.row]
    table = args.table or spec.get("table")
    if not table:
        raise ResultsInputError("no table given; pass --table (e.g. table5) or put \"table\" in the --spec file")
    outputs = aggregate_table(
        table, rows, args.out,
        profile=args.profile or spec.get("profile") or (params.name if params else None) or "full",
        experiment=(args.mlflow_experiment or spec.get("experiment")
                    or (params.params.mlflow.experiment if params else None) or "maedfer-tables"),
        tracking=tracking_enabled(args, params),
    )
    print(json.dumps(outputs.summary()))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the aggregate stage; exit status 2 with one line for a user error."""
    return stage_main(NAME, build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
