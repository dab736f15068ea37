#!/usr/bin/env python
"""Stage: download one released checkpoint to its path and verify its sha256 (recorded on first download).

    python -m pipeline.download --url https://.../checkpoint-49.pth --out data/released/mae_dfer_vox2.pth \\
        [--sha256 HEX] [--where "https://github.com/sunlicai/MAE-DFER (README)"]
    python -m pipeline.download --params params.yaml --entry released.finetuned.dfew.folds.fold1 --out ...  # as the DAG

With --entry the url, sha256 and where come from that entry of the params file (where: the entry's, else
the nearest enclosing one's); explicit flags win.

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
    p.add_argument("--url", default=None, help="http(s) URL of the file (default: the --entry's url)")
    p.add_argument("--entry", default=None, metavar="KEY",
                   help="params-file key of a checkpoint entry (url, sha256, where): pretrain.runs.NAME.checkpoint")
    p.add_argument("--sha256", default=None, metavar="HEX", help="expected sha256 (default: record the first one)")
    p.add_argument("--where", default=None, help="where a user gets the file by hand (named in errors)")
    p.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default 60)")
    add_shared_flags(p, "where the file goes, e.g. data/released/mae_dfer_vox2.pth",
                     params_help="params file (validated; this stage reads no settings from it)",
                     mlflow_help="accepted for uniformity; download logs nothing to MLflow")
    return p


def fill_from_entry(args: argparse.Namespace, data: dict, params_file: str) -> None:
    """Set ``args.url`` / ``sha256`` / ``where`` left unset from the params entry ``args.entry`` (flags win)."""
    node, chain = data, []
    for part in args.entry.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ValueError(f"{params_file}: --entry {args.entry}: no such key ({part!r} is missing)")
        chain.append(node)
        node = node[part]
    if not isinstance(node, dict):
        raise ValueError(f"{params_file}: --entry {args.entry}: not a checkpoint entry (a mapping with url)")
    args.url = args.url or node.get("url")
    args.sha256 = args.sha256 or node.get("sha256")
    if args.where is None:
        args.where = next((n["where"] for n in [node, *reversed(chain)] if isinstance(n.get("where"), str)), None)


def run(args: argparse.Namespace) -> int:
    """Download and verify as ``args`` say; prints a one-line summary."""
    from maedfer.data.acquire.fetch_file import fetch_file

    profile = load_params(args)
    if args.entry is not None:
        if profile is None:
            raise ValueError("--entry needs --params (the params file that holds the entry)")
        fill_from_entry(args, profile.data, str(profile.path))
    if not args.url:
        raise ValueError("no URL: pass --url, or --params with --entry naming a checkpoint entry that has a url")
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
