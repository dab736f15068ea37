"""Ingest one dataset: decode its clips, crop faces, write Parquet shards and the index.

    python -m pipeline.ingest --dataset dfew --root /data/DFEW --out data/shards/dfew [--size 160]
        [--store-size source|N] [--use-raw-videos] [--workers N] [--jpeg-quality 90] [--shard-mb 256] [--margin 0.25]
        [--device cpu|cuda] [--detect-every K] [--detect-max-side PX] [--progress-seconds S] [--verify]
    python -m pipeline.ingest --params params.yaml --dataset dfew --root data/raw/dfew --out ...   # as the DAG does

Settings: explicit flags > the params file's datasets.<name>.ingest > the defaults below.
Outputs under --out: index.parquet, shards/shard-NNNNN.parquet, report.json, ingest_state.json.
Re-running resumes an interrupted run and rewrites nothing when input and settings are unchanged.
SIGTERM (a scheduler's time limit) or Ctrl-C stops at the next clip boundary, keeps the finished clips
in closed shards, prints one line saying so and exits with 128 + the signal number (143, 130).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from maedfer.settings.params import IngestSettings
from maedfer.settings.resolve import resolve_config
from pipeline._stage import (
    add_setting_flags,
    add_shared_flags,
    explicit,
    load_params,
    lock_output,
    stage_main,
    stage_parser,
)

NAME = "ingest"


def build_parser() -> argparse.ArgumentParser:
    """The ingest command's parser (settings flags stay out of the args unless typed)."""
    parser = stage_parser(NAME, __doc__)
    parser.add_argument("--dataset", required=True, help="dataset name (voxceleb2, dfew, ferv39k, mafw, cremad, ...)")
    parser.add_argument("--root", required=True, type=Path, help="dataset folder in its owners' layout")
    add_shared_flags(parser, "output folder, e.g. data/shards/dfew", out_type=Path,
                     params_help="params file: the dataset's adapter and datasets.<name>.ingest settings (flags win)",
                     mlflow_help="accepted for uniformity; ingest logs nothing to MLflow")
    add_setting_flags(parser, IngestSettings, ["size"], int, {"size": "stored frame size in pixels (square)"})
    add_setting_flags(parser, IngestSettings, ["store_size"], _store_size,
                      {"store_size": "store frames at the source's resolution ('source') or N x N instead of "
                                     "--size, resized to the model input at load time with PIL bilinear"})
    parser.add_argument(
        "--use-raw-videos",
        action="store_true",
        default=argparse.SUPPRESS,
        help="read the raw videos and detect faces (MTCNN) instead of the owners' face crops",
    )
    add_setting_flags(parser, IngestSettings, ["workers", "jpeg_quality"], int,
                      {"workers": "decoding processes (0: decode in this process); on the CPU each also runs MTCNN "
                                  "on its own clips"})
    add_setting_flags(parser, IngestSettings, ["shard_mb", "margin"], float,
                      {"shard_mb": "bound on the JPEG bytes of one shard, in MiB",
                       "margin": "MTCNN crop margin: side = (1 + margin) * box side"})
    add_setting_flags(parser, IngestSettings, ["detect_every", "detect_max_side"], int,
                      {"detect_every": "MTCNN on every K-th frame only, interpolated between agreeing detections "
                                       "(1: every frame)",
                       "detect_max_side": "MTCNN runs on a copy downscaled to at most this many pixels"})
    add_setting_flags(parser, IngestSettings, ["progress_seconds"], float,
                      {"progress_seconds": "a progress line in the log this often when not on a terminal (0: off)"})
    parser.add_argument("--device", default=argparse.SUPPRESS,
                        help="MTCNN device (default: cuda when available, else cpu)")
    parser.add_argument("--verify", action="store_true", help="check every stored clip against its checksum after")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar: progress lines in the log instead (as when not on a terminal)")
    lock_output(parser, "ingest")
    return parser


def _store_size(text: str) -> int | str:
    """``--store-size``: "source" or an integer."""
    if text.strip().lower() == "source":
        return "source"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'source' or an integer, got {text!r}") from None


def resolve_settings(args: argparse.Namespace) -> tuple[str, IngestSettings]:
    """The adapter name and the ingest settings: explicit flags > params file > defaults."""
    profile = load_params(args)
    if profile is None:
        return args.dataset, resolve_config(IngestSettings, None, explicit(args, IngestSettings))
    profile.require_dataset(args.dataset)
    spec = profile.params.datasets[args.dataset]
    return spec.adapter, resolve_config(IngestSettings, asdict(spec.ingest), explicit(args, IngestSettings))


def run(args: argparse.Namespace) -> int:
    """Ingest the dataset as ``args`` say; prints a one-line summary (or one line saying it was stopped)."""
    from maedfer.data.adapters import get_adapter
    from maedfer.data.faces import MtcnnSettings
    from maedfer.data.ingest import ingest
    from maedfer.data.ingest_stop import IngestInterrupted
    from maedfer.data.shards import INDEX_NAME, verify_index

    adapter_name, settings = resolve_settings(args)
    if settings.detect_every < 1 or settings.detect_max_side < 16:
        raise ValueError(f"--detect-every must be >= 1 and --detect-max-side >= 16 (datasets.{args.dataset}.ingest), "
                         f"got {settings.detect_every} and {settings.detect_max_side}")
    if not args.root.exists():
        from maedfer.workflow.plan import missing_root_message

        raise FileNotFoundError(missing_root_message(args.dataset, str(args.root)))
    options = {"use_raw_videos": True} if settings.use_raw_videos else {}
    adapter = get_adapter(adapter_name, args.root, **options)
    records = list(adapter.records())  # a list gives the progress bar its total
    try:
        report = ingest(
            records,
            root=args.root,
            out=args.out,
            face_mode=adapter.face_mode,
            size=settings.size,
            jpeg_quality=settings.jpeg_quality,
            shard_bytes=int(settings.shard_mb * 2**20),
            workers=settings.workers,
            mtcnn=MtcnnSettings(margin=settings.margin, detect_max_side=settings.detect_max_side,
                                detect_every=settings.detect_every),
            device=settings.device,
            dataset=adapter_name.lower(),
            class_names=list(adapter.class_names),
            num_folds=getattr(adapter, "num_folds", None),
            adapter_skipped=adapter.skipped,
            progress=False if args.no_progress else None,
            store_size=settings.store_size,
            progress_seconds=settings.progress_seconds,
        )
    except IngestInterrupted as exc:  # SIGTERM / Ctrl-C: the shards are closed; one line, no traceback
        sys.stderr.write(f"{args.dataset}: {exc}\n")
        sys.stderr.flush()
        return exc.exit_status
    if args.verify:
        checked = verify_index(args.out / INDEX_NAME)
        print(f"verified {checked} clips against their checksums")
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


def main(argv: list[str] | None = None) -> int:
    """Run the ingest stage; exit status 2 with one line for a user error."""
    return stage_main(NAME, build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
