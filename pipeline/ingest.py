"""Ingest one dataset: decode its clips, crop faces, write Parquet shards and the index.

    python pipeline/ingest.py --dataset dfew --root /data/DFEW --out data/shards/dfew [--size 160]
        [--use-raw-videos] [--workers N] [--jpeg-quality 90] [--shard-mb 256] [--margin 0.25]
        [--device cpu|cuda] [--verify]

Outputs under --out: index.parquet, shards/shard-NNNNN.parquet, report.json, ingest_state.json.
Re-running resumes an interrupted run and rewrites nothing when input and settings are unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset name (voxceleb2, dfew, ferv39k, mafw, cremad, ...)")
    parser.add_argument("--params", default=None,
                        help="params file: the dataset's adapter and datasets.<name>.ingest settings (flags win)")
    parser.add_argument("--root", required=True, type=Path, help="dataset folder in its owners' layout")
    parser.add_argument("--out", required=True, type=Path, help="output folder, e.g. data/shards/dfew")
    parser.add_argument("--size", type=int, default=160, help="stored frame size in pixels (square)")
    parser.add_argument(
        "--use-raw-videos",
        action="store_true",
        help="read the raw videos and detect faces (MTCNN) instead of the owners' face crops",
    )
    parser.add_argument("--workers", type=int, default=0, help="decoding processes (0: decode in this process)")
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument("--shard-mb", type=float, default=256.0, help="bound on the JPEG bytes of one shard, in MiB")
    parser.add_argument("--margin", type=float, default=0.25, help="MTCNN crop margin: side = (1 + margin) * box side")
    parser.add_argument("--device", default=None, help="MTCNN device (default: cuda when available, else cpu)")
    parser.add_argument("--verify", action="store_true", help="check every stored clip against its checksum after")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    return parser


def apply_params(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """Fill the settings left at their defaults from the params file; returns the adapter name."""
    if not args.params:
        return args.dataset
    from maedfer.workflow.profile import load_profile

    profile = load_profile(args.params)
    if args.dataset not in profile.datasets:
        raise ValueError(f"{args.params}: no dataset {args.dataset!r} in datasets ({', '.join(profile.datasets)})")
    spec = profile.datasets[args.dataset]
    for key, value in spec.get("ingest", {}).items():
        if getattr(args, key) == parser.get_default(key):
            setattr(args, key, value)
    return spec["adapter"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    from maedfer.data.adapters import get_adapter
    from maedfer.data.faces import MtcnnSettings
    from maedfer.data.ingest import ingest
    from maedfer.data.shards import INDEX_NAME, ShardError, verify_index
    from maedfer.logging_utils import setup_logging

    setup_logging(args.verbose)
    try:
        adapter_name = apply_params(args, parser)
        if not args.root.exists():
            from maedfer.workflow.plan import missing_root_message

            raise FileNotFoundError(missing_root_message(args.dataset, str(args.root)))
        options = {"use_raw_videos": True} if args.use_raw_videos else {}
        adapter = get_adapter(adapter_name, args.root, **options)
        records = list(adapter.records())  # a list gives the progress bar its total
        report = ingest(
            records,
            root=args.root,
            out=args.out,
            face_mode=adapter.face_mode,
            size=args.size,
            jpeg_quality=args.jpeg_quality,
            shard_bytes=int(args.shard_mb * 2**20),
            workers=args.workers,
            mtcnn=MtcnnSettings(margin=args.margin),
            device=args.device,
            dataset=adapter_name.lower(),
            class_names=list(adapter.class_names),
            num_folds=getattr(adapter, "num_folds", None),
            adapter_skipped=adapter.skipped,
            progress=False if args.no_progress else None,
        )
        if args.verify:
            checked = verify_index(args.out / INDEX_NAME)
            print(f"verified {checked} clips against their checksums")
    except (ValueError, FileNotFoundError, ShardError) as exc:
        if args.verbose:
            raise
        sys.stderr.write(f"ingest: error: {exc}\n")
        return 2
    print(
        f"{args.dataset}: {report.stored} clips in {report.shards} shards "
        f"({report.written} written, {report.reused} reused, {report.num_skipped} skipped: "
        f"{json.dumps({k: len(v) for k, v in report.skipped.items()})}; "
        f"{len(report.adapter_skipped)} left out by the adapter), "
        f"{report.bytes_on_disk / 2**20:.1f} MiB, {report.seconds:.1f} s, {report.frames_per_second:.0f} frames/s"
        + (" - up to date, nothing rewritten" if report.up_to_date else "")
        + f"; report: {args.out / 'report.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
