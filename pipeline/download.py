#!/usr/bin/env python
"""Stage: download one released checkpoint to its path and verify its sha256 (recorded on first download).

    python -m pipeline.download --url https://.../checkpoint-49.pth --out data/released/mae_dfer_vox2.pth \\
        [--sha256 HEX] [--where "https://github.com/sunlicai/MAE-DFER (README)"]

Resumes an interrupted download; a file already at --out is verified, not fetched again. Without
--sha256 the first download's sha256 is recorded (<folder>/.acquire.json) and checked from then on.
Prints a one-line summary; bad input gives a one-line error and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from pipeline._stage import add_shared_flags, load_params, stage_main, stage_parser

NAME = "download"


def build_parser() -> argparse.ArgumentParser:
    """The download command's parser."""
    p = stage_parser(NAME, __doc__)
    p.add_argument("--url", required=True, help="http(s) URL of the file")
    p.add_argument("--sha256", default=None, metavar="HEX", help="expected sha256 (default: record the first one)")
    p.add_argument("--where", default=None, help="where a user gets the file by hand (named in errors)")
    p.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default 60)")
    add_shared_flags(p, "where the file goes, e.g. data/released/mae_dfer_vox2.pth",
                     params_help="params file (validated; this stage reads no settings from it)",
                     mlflow_help="accepted for uniformity; download logs nothing to MLflow")
    return p


def run(args: argparse.Namespace) -> int:
    """Download and verify as ``args`` say; prints a one-line summary."""
    from maedfer.data.acquire.fetch_file import fetch_file

    load_params(args)
    r = fetch_file(args.url, args.out, args.sha256, where=args.where, timeout=args.timeout)
    how = {"params": "matches the given sha256", "record": "matches the sha256 recorded at the first download",
           "recorded now": "recorded (no sha256 given; later runs verify against it)"}[r.checked_against]
    print(f"{r.path}: {r.action}{f' ({r.downloaded_bytes} bytes)' if r.downloaded_bytes else ''}; "
          f"sha256 {r.sha256} {how}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the download stage; exit status 2 with one line for a user error."""
    return stage_main(NAME, build_parser(), run, argv, errors=(OSError,))


if __name__ == "__main__":
    sys.exit(main())
