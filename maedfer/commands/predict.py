"""``maedfer predict``: facial-expression probabilities of videos, per window and overall.

Detect and track faces (MTCNN), crop them as at training time, slide the test loader's windows (the model's
clip: 16 frames taken every 4) over each video and print each window's class probabilities and the whole
video's (time-weighted: each window weighs the frames it covers). Errors are one line per video; the exit code
is 2 when any video failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from maedfer.commands import add_command

log = logging.getLogger(__name__)


def _class_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"empty class name in {text!r}; give names separated by commas: a,b,c")
    return names


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value




def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``maedfer predict``."""
    p = add_command(subparsers, "predict", __doc__)
    p.add_argument(
        "videos", nargs="+", metavar="VIDEO", help="video files (any container ffmpeg reads) or frame folders"
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        metavar="PATH",
        help="maedfer model file, model folder (maedfer export-hf) or Hub id owner/name, MLflow model URI, or "
        "official fine-tuned checkpoint (default: the demo model runs/demo/finetune/mae_dfer/dfew/fold1/model.pt, "
        "trained on synthesised expressions)",
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="URI",
        help="a registered MLflow model, models:/<name>/<version> (or runs:/<run_id>/model), from the store "
        "MLFLOW_TRACKING_URI names (default: ./mlflow.db)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document (schema maedfer.predict.batch/1)")
    p.add_argument(
        "--annotate",
        metavar="OUT.mp4",
        default=None,
        help="write an annotated copy (box, label, probability bars); with several videos a folder "
        "receiving <name>_annotated.mp4 files",
    )
    p.add_argument("--all-faces", action="store_true", help="every face track instead of the largest face")
    p.add_argument(
        "--stride",
        type=_positive,
        default=None,
        metavar="N",
        help="frames between window starts (default: half a window)",
    )
    p.add_argument(
        "--frame-stride",
        type=_positive,
        default=None,
        metavar="N",
        help="frames between the sampled frames of a window (default 4, the test protocol)",
    )
    p.add_argument(
        "--detect-every",
        type=_positive,
        default=None,
        metavar="K",
        help="run MTCNN on every K-th frame and interpolate the boxes (default 3; 1 = every frame, as at ingest)",
    )
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available, else cpu")
    p.add_argument(
        "--class-names",
        type=_class_names,
        default=None,
        metavar="A,B,C",
        help="class names in output order (default: the checkpoint's; DFEW's 7 for a 7-class checkpoint without)",
    )
    p.add_argument(
        "--trust-pickle", action="store_true", help="allow full unpickling of an official checkpoint (files you trust)"
    )
    p.add_argument("--max-frames", type=_positive, default=None, metavar="N", help="only the first N frames")
    p.add_argument("--batch-size", type=_positive, default=8, metavar="N", help="windows per forward pass (default 8)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Predict every video; one error line per failed video, exit code 2 when any failed."""
    if not args.verbose:  # OpenCV's FFmpeg would add its own lines (e.g. "moov atom not found") to our one-line errors
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    from maedfer.predict import Predictor, PredictSettings, annotated_path
    from maedfer.predict.report import format_json, format_table

    settings = PredictSettings(
        hop=args.stride, all_faces=args.all_faces, batch_size=args.batch_size, max_frames=args.max_frames
    )
    if args.frame_stride is not None:
        settings.frame_stride = args.frame_stride
    if args.detect_every is not None:
        settings.detect_every = args.detect_every
    if args.model is not None and args.checkpoint is not None:
        sys.stderr.write("maedfer predict: error: give --checkpoint or --model, not both\n")
        return 2
    if args.model is not None and not args.model.startswith(("models:/", "runs:/")):
        sys.stderr.write(f"maedfer predict: error: --model {args.model}: expected an MLflow model URI "
                         "models:/<name>/<version>; pass files and folders with --checkpoint\n")
        return 2
    predictor = Predictor(
        args.model or args.checkpoint,
        class_names=args.class_names,
        device=args.device,
        settings=settings,
        trust_pickle=args.trust_pickle,
    )
    if predictor.loaded.demo:  # once per run, before any result
        from maedfer.predict.loading import DEMO_NOTICE

        sys.stderr.write(f"maedfer predict: note: {DEMO_NOTICE}\n")
    several = len(args.videos) > 1
    results, errors = [], []
    for video in args.videos:
        try:
            out = annotated_path(args.annotate, video, several) if args.annotate else None
            result = predictor.predict(video, annotate=out)
        except (ValueError, OSError) as exc:  # missing, unreadable, faceless video; unwritable output
            if args.verbose:
                raise
            message = str(exc) if str(video) in str(exc) else f"{video}: {exc}"
            errors.append((video, message))
            sys.stderr.write(f"maedfer predict: error: {message}\n")
            continue
        results.append(result)
        if not args.json:
            sys.stdout.write(format_table(result) + "\n\n")
            sys.stdout.flush()
    if args.json:
        sys.stdout.write(format_json(results, errors) + "\n")
    if errors:
        if several:
            sys.stderr.write(f"maedfer predict: {len(errors)} of {len(args.videos)} videos failed\n")
        return 2
    return 0
