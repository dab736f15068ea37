"""Acquire one dataset into a folder from local folders, local archives or http(s) URLs.

Example (RAVDESS ships one zip per actor):
    python -m pipeline.acquire --dataset ravdess --out data/raw/ravdess \\
        --source https://zenodo.org/records/1188976/files/Video_Speech_Actor_01.zip ...
    python -m pipeline.acquire --params params.yaml --dataset ravdess --source ...   # into datasets.ravdess.root

--out (alias --dest) is the dataset root to fill; with --params it defaults to the dataset's root there.
Prints a one-line summary; bad input gives a one-line error and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from maedfer.data.acquire import acquire_many
from maedfer.data.adapters import ADAPTERS, LayoutError, get_adapter
from maedfer.io_utils import format_bytes
from pipeline._stage import add_shared_flags, load_params, stage_main, stage_parser

NAME = "acquire"


def build_parser() -> argparse.ArgumentParser:
    """The acquire command's parser."""
    p = stage_parser(NAME, __doc__)
    p.add_argument("--dataset", required=True, choices=sorted(ADAPTERS), help="which dataset (checks its layout)")
    p.add_argument(
        "--source",
        action="append",
        required=True,
        metavar="URL_OR_PATH",
        help="a folder, an archive (zip/tar/tar.gz) or an http(s) URL; repeat for several",
    )
    p.add_argument(
        "--sha256", action="append", metavar="HEX", help="expected sha256 of each source, in the order of --source"
    )
    add_shared_flags(p, "dataset root folder to fill, e.g. data/raw/ravdess (default with --params: "
                     "datasets.<name>.root)", out_required=False, out_aliases=("--dest",), out_type=Path,
                     params_help="params file: where the dataset goes (datasets.<name>.root)",
                     mlflow_help="accepted for uniformity; acquire logs nothing to MLflow")
    p.add_argument("--copy", action="store_true", help="copy local folders instead of symlinking their entries")
    p.add_argument("--keep-download", action="store_true", help="keep downloaded archives after extraction")
    p.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default 60)")
    p.add_argument("--no-validate", action="store_true", help="do not check the dataset layout afterwards")
    return p


def resolve_dest(args: argparse.Namespace) -> Path:
    """The folder to fill: --out > the params file's datasets.<name>.root; ValueError without either."""
    profile = load_params(args)
    if args.out is not None:
        return args.out
    if profile is None:
        raise ValueError("the following arguments are required: --out (or --dest), or --params to use its "
                         "datasets.<name>.root")
    profile.require_dataset(args.dataset)
    return Path(profile.params.datasets[args.dataset].root)


def run(args: argparse.Namespace) -> str:
    """Acquire the sources as ``args`` say; returns the one-line summary."""
    args.dest = resolve_dest(args)
    results = acquire_many(
        args.source,
        args.dest,
        args.sha256,
        copy=args.copy,
        keep_download=args.keep_download,
        timeout=args.timeout,
    )
    counts: dict[str, int] = {}
    for r in results:
        counts[r.action] = counts.get(r.action, 0) + 1
    done = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
    fetched = sum(r.downloaded_bytes for r in results)
    summary = f"{args.dataset}: {len(results)} source(s) -> {args.dest}: {done}"
    if fetched:
        summary += f"; downloaded {format_bytes(fetched, 'B')}"
    if not args.no_validate:
        try:
            get_adapter(args.dataset, args.dest).validate()
        except LayoutError as exc:
            raise LayoutError(f"sources acquired into {args.dest}, but the layout check failed: {exc}") from exc
        summary += "; layout ok"
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run the acquire stage; exit status 2 with one line for a user error."""
    return stage_main(NAME, build_parser(), lambda a: print(run(a)), argv, errors=(OSError,))


if __name__ == "__main__":
    sys.exit(main())
