"""``maedfer convert``: an official MAE-DFER checkpoint -> a maedfer model file."""

from __future__ import annotations

import argparse
import sys

from maedfer.commands import add_command


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``maedfer convert``."""
    p = add_command(sub, "convert")
    p.add_argument("checkpoint", help="the authors' .pth file (state dict under 'model')")
    p.add_argument("output", help="maedfer model file to write (.pt)")
    p.add_argument(
        "--region-size",
        type=int,
        nargs=3,
        metavar=("T", "H", "W"),
        help="LGI-Former region size, when the region count is ambiguous (4 regions)",
    )
    p.add_argument("--num-heads", type=int, help="attention heads (default: from the width)")
    p.add_argument(
        "--decoder-heads",
        type=int,
        metavar="N",
        help="pre-training models: decoder attention heads (default: from the decoder width, "
        "384 -> 6; other widths need this)",
    )
    p.add_argument(
        "--target",
        choices=["mae_dfer", "videomae"],
        help="pre-training models: reconstruction target (default: from the checkpoint's saved args, "
        "else mae_dfer; the weights have the same shapes for both)",
    )
    p.add_argument(
        "--pool",
        choices=["region", "local"],
        default="region",
        help="fine-tuned models: pool representative (default) or local tokens",
    )
    p.add_argument(
        "--token-order",
        choices=["authors", "raster"],
        default="authors",
        help="pre-training models: decoder position order (see README)",
    )
    p.add_argument("--dataset", help="name class labels after this dataset (dfew, ferv39k, mafw, ...)")
    p.add_argument("--class-names", help="comma-separated class names, in label order")
    p.add_argument("--trust-pickle", action="store_true", help="allow full unpickling (only for files you trust)")
    p.set_defaults(func=run)


def _class_names(args: argparse.Namespace) -> list[str] | None:
    if args.class_names:
        return [c.strip() for c in args.class_names.split(",")]
    if args.dataset:
        from maedfer.data.adapters import ADAPTERS

        if args.dataset not in ADAPTERS:
            raise ValueError(f"unknown dataset {args.dataset!r}; known: {', '.join(sorted(ADAPTERS))}")
        return list(ADAPTERS[args.dataset].class_names)
    return None


def run(args: argparse.Namespace) -> int:
    """Convert the checkpoint and write the maedfer model file."""
    from maedfer.models.checkpoint import save_model
    from maedfer.models.official import load_official_checkpoint

    names = _class_names(args)
    model = load_official_checkpoint(
        args.checkpoint,
        region_size=tuple(args.region_size) if args.region_size else None,
        num_heads=args.num_heads,
        decoder_heads=args.decoder_heads,
        target=args.target,
        pool=args.pool,
        token_order=args.token_order,
        class_names=names,
        trust_pickle=args.trust_pickle,
    )
    num_classes = getattr(model, "num_classes", 0)
    if names is not None and num_classes and len(names) != num_classes:
        raise ValueError(f"{len(names)} class names given but the checkpoint has {num_classes} classes")
    save_model(args.output, model, class_names=names, extra={"converted_from": str(args.checkpoint)})
    params = sum(p.numel() for p in model.parameters())
    sys.stdout.write(f"wrote {args.output}: {model.arch} ({params:,} parameters)\n")
    return 0
