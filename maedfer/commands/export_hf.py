"""``maedfer export-hf``: a model file or run folder -> a model folder in the Hugging Face Hub convention.

Writes config.json (the model's architecture and class names), model.safetensors (the weights) and a
generated README.md model card (architecture, training data, every fold's test results read from the run
folder, how to use it and how to cite the paper). Load the folder with ``maedfer predict --checkpoint DIR``,
``maedfer app --checkpoint DIR`` or ``maedfer.hub.MaedferModel.from_pretrained(DIR)``; upload it with
``hf upload OWNER/NAME DIR`` (huggingface_hub's command line) to share it.
"""

from __future__ import annotations

import argparse
import logging
import sys

from maedfer.commands import add_command

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``maedfer export-hf``."""
    p = add_command(subparsers, "export-hf", __doc__)
    p.add_argument("source", metavar="MODEL", help="a model.pt, or the run folder holding it "
                   "(e.g. runs/demo/finetune/mae_dfer/dfew/fold1)")
    p.add_argument("out", metavar="OUT_DIR", help="the model folder to write (new or empty)")
    p.add_argument("--repo-id", default=None, metavar="OWNER/NAME",
                   help="the Hub id the card's usage lines load the model by (default: a local path)")
    p.add_argument("--dataset", default=None,
                   help="training dataset (default: read from the run folder's path, .../<dataset>/fold<k>/)")
    p.add_argument("--data-note", default=None, metavar="TEXT", help="a sentence on the training data for the card")
    p.add_argument("--license", default=None, help="licence of the weights for the card's metadata (e.g. cc-by-nc-4.0)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow full unpickling of an official checkpoint (files you trust)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty OUT_DIR")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Export one model; the folder's path and files on stdout."""
    from maedfer.hub import HubFolderError, export_folder

    try:
        out = export_folder(args.source, args.out, dataset=args.dataset, repo_id=args.repo_id, license=args.license,
                            data_note=args.data_note, trust_pickle=args.trust_pickle, overwrite=args.overwrite)
    except HubFolderError as exc:
        raise ValueError(str(exc)) from None
    files = ", ".join(sorted(p.name for p in out.iterdir()))
    sys.stdout.write(f"{out}: {files}\n")
    return 0
