"""Acquire one dataset into a folder from local folders, local archives or http(s) URLs.

Example (RAVDESS ships one zip per actor):
    python -m pipeline.acquire --dataset ravdess --out data/raw/ravdess \\
        --source https://zenodo.org/records/1188976/files/Video_Speech_Actor_01.zip ...
    python -m pipeline.acquire --params params.yaml --dataset ravdess --source ...   # into datasets.ravdess.root
    python -m pipeline.acquire --params params.yaml --dataset ravdess --out data/raw/ravdess   # as the DAG does

--out (alias --dest) is the dataset root to fill; with --params it defaults to the dataset's root there.
Without --source, --params gives the dataset's `source` (datasets.<name>.source: a folder, files or URLs
with checksums, or a catalogue entry; see maedfer.data.acquire.sources): the stage brings what is missing,
verifies it and writes <root>/.acquired.json (unchanged when nothing changed: the DAG sees no change).
Prints a one-line summary; bad input gives a one-line error and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from maedfer.data.acquire import MANIFEST_NAME, acquire_many
from maedfer.data.adapters import ADAPTERS, LayoutError, get_adapter
from maedfer.io_utils import format_bytes
from pipeline._stage import add_shared_flags, load_params, stage_main, stage_parser

NAME = "acquire"


def build_parser() -> argparse.ArgumentParser:
    """The acquire command's parser."""
    p = stage_parser(NAME, __doc__)
    p.add_argument("--dataset", required=True,
                   help=f"which dataset: a key of the params file's datasets, or without --params one of "
                        f"{', '.join(sorted(ADAPTERS))} (checks its layout)")
    p.add_argument(
        "--source",
        action="append",
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


def _adapter_name(args: argparse.Namespace) -> str:
    profile = load_params(args)
    if profile is not None:
        profile.require_dataset(args.dataset)
        return profile.params.datasets[args.dataset].adapter
    if args.dataset not in ADAPTERS:
        raise ValueError(f"--dataset {args.dataset!r}: not one of {', '.join(sorted(ADAPTERS))}; or pass --params")
    return args.dataset


def _validate(adapter: str, dest: Path) -> None:
    try:
        get_adapter(adapter, dest).validate()
    except LayoutError as exc:
        raise LayoutError(f"sources acquired into {dest}, but the layout check failed: {exc}") from exc


def _layout_ok(args: argparse.Namespace) -> bool:
    try:
        get_adapter(_adapter_name(args), args.dest).validate()
    except LayoutError:
        return False
    return True


def run_from_params(args: argparse.Namespace) -> str:
    """Acquire the params file's ``datasets.<name>.source`` into the root; returns the one-line summary."""
    from maedfer.data.acquire.bring import bring, write_marker
    from maedfer.data.acquire.sources import DEFAULT_INBOX, resolve_source

    profile = load_params(args)
    spec = profile.datasets[args.dataset].get("source")
    where = f"{profile.path}: datasets.{args.dataset}.source"
    if spec is None:
        raise ValueError(f"{where}: not set; give --source, or set the dataset's source in the params file")
    if "catalogue" in spec and not (args.dest / MANIFEST_NAME).exists() and _layout_ok(args):
        # filled by hand in the owners' layout before this stage existed: used as it is, nothing fetched
        wrote = write_marker(args.dest, args.dataset, [])
        return (f"{args.dataset}: {args.dest} already holds the dataset in its owners' layout (filled by hand); "
                f"nothing acquired; {'marker written' if wrote else 'nothing changed'}")
    resolved = resolve_source(spec, args.dataset, where)
    inbox = spec.get("inbox") or DEFAULT_INBOX.format(name=spec.get("catalogue", args.dataset))
    results = bring(resolved, args.dest, timeout=args.timeout, inbox_hint=inbox)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.action] = counts.get(r.action, 0) + 1
    done = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
    summary = f"{args.dataset}: {len(results)} item(s) -> {args.dest}: {done}"
    if fetched := sum(r.downloaded_bytes for r in results):
        summary += f"; downloaded {format_bytes(fetched, 'B')}"
    if recorded := sum(r.checked == "recorded now" for r in results):
        summary += (f"; {recorded} without a published checksum: md5/sha256 recorded in {args.dest}/.acquire.json "
                    "and verified from now on")
    if not args.no_validate:
        _validate(_adapter_name(args), args.dest)
        summary += "; layout ok"
    summary += "; marker written" if write_marker(args.dest, args.dataset, results) else "; nothing changed"
    return summary


def run(args: argparse.Namespace) -> str:
    """Acquire the sources as ``args`` say; returns the one-line summary."""
    args.dest = resolve_dest(args)
    if not args.source:
        if args.params is None:
            raise ValueError("give --source (folders, archives or URLs), or --params to use the dataset's source")
        return run_from_params(args)
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
        _validate(_adapter_name(args), args.dest)
        summary += "; layout ok"
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run the acquire stage; exit status 2 with one line for a user error."""
    return stage_main(NAME, build_parser(), lambda a: print(run(a)), argv, errors=(OSError,))


if __name__ == "__main__":
    sys.exit(main())
