#!/usr/bin/env python
"""Stage: aggregate per-fold fine-tuning results into one of the paper's tables, beside the published numbers.

    python pipeline/aggregate.py --table table5 --out results/tables/table5 \\
        --row mae_dfer:dfew:runs/finetune/dfew/fold1,runs/finetune/dfew/fold2,...,runs/finetune/dfew/fold5 \\
        [--row KEY[=PAPER_KEY]:DATASET:FOLD[,FOLD...] ...] [--spec spec.json] [--profile full|demo|...] \\
        [--experiment maedfer-tables] [--no-tracking]

--row KEY[=PAPER_KEY]:DATASET:FOLD[,FOLD...]  one of our rows. KEY is compared with the paper row of the
    same key (or PAPER_KEY; "none" for no paper counterpart) in DATASET's section of the table; each FOLD
    is a fold run folder (metrics.json + predictions.csv) or the path of its metrics.json. Repeatable.
--spec spec.json  {"table": ..., "profile": ..., "experiment": ..., "rows": [{"key", "dataset", "folds",
    "paper_key"?}]}; --row adds rows and the other flags override it.

Writes to --out: <table>.md/.csv/.tex, <table>_per_class.md/.csv/.tex (Tables 5-7 and 12-14: per-class),
metrics.json (DVC metrics) and confusion/<row>-<dataset>.csv (DVC confusion plots, columns actual,predicted).
Logs one MLflow parent run per (table, profile) with one child run per fold (see maedfer/results/tracking.py).
Prints a JSON summary. Bad input: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from maedfer.logging_utils import setup_logging


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", help="paper table: table2..table14 or fig3 (or from --spec)")
    p.add_argument("--out", required=True, help="output folder, e.g. results/tables/table5")
    p.add_argument("--row", action="append", default=[], metavar="KEY[=PAPER_KEY]:DATASET:FOLD[,FOLD...]")
    p.add_argument("--spec", help="JSON spec with table, profile, experiment and rows")
    p.add_argument("--profile", default=None, help="run profile named in captions and MLflow tags (default: full)")
    p.add_argument("--experiment", default=None, help="MLflow experiment (default: maedfer-tables)")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    from maedfer.results.aggregate import aggregate_table, load_spec, parse_row_arg
    from maedfer.results.collect import ResultsInputError
    from maedfer.results.paper import PaperTablesError

    try:
        spec = load_spec(args.spec) if args.spec else {"rows": []}
        rows = list(spec["rows"]) + [parse_row_arg(r) for r in args.row]
        table = args.table or spec.get("table")
        if not table:
            raise ResultsInputError("no table given; pass --table (e.g. table5) or put \"table\" in the --spec file")
        outputs = aggregate_table(
            table, rows, args.out,
            profile=args.profile or spec.get("profile") or "full",
            experiment=args.experiment or spec.get("experiment") or "maedfer-tables",
            tracking=not args.no_tracking,
        )
    except (ResultsInputError, PaperTablesError, FileNotFoundError) as exc:
        sys.stderr.write(f"aggregate: error: {exc}\n")
        return 2
    print(json.dumps(outputs.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
