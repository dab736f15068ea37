"""The ``maedfer`` sub-commands: one module per sub-command, named after it (``demo-data`` -> demo_data.py).

Each module exposes ``add_parser(subparsers)``, which registers its parser through :func:`add_command`
and sets ``func(args) -> int``. :mod:`maedfer.cli` imports only the module of the sub-command being run.
"""

from __future__ import annotations

import argparse

# sub-command name -> one-line help (``maedfer --help`` lists these without importing any module)
COMMANDS: dict[str, str] = {
    "model-stats": "parameters and FLOPs of Tables 3, 4, 9, 10 beside the paper",
    "convert": "convert an official MAE-DFER checkpoint to a maedfer model file",
    "demo-data": "generate the labelled demo dataset from real faces (DFEW/VoxCeleb2 layouts)",
    "predict": "expression probabilities of videos, per window and overall",
    "workflow": "validate params files, list a target's jobs, write the DVC pipelines",
    "export-hf": "write a model folder in the Hugging Face Hub convention (safetensors, config, card)",
    "app": "a local web page for trying a model on a face video (Gradio, 127.0.0.1)",
}


def module_name(command: str) -> str:
    """The module defining a sub-command (``demo-data`` -> ``maedfer.commands.demo_data``)."""
    return f"{__name__}.{command.replace('-', '_')}"


def add_command(subparsers: argparse._SubParsersAction, name: str, doc: str | None = None) -> argparse.ArgumentParser:
    """Register sub-command ``name``: its one-line help from :data:`COMMANDS`, its description from ``doc``.

    ``doc`` is the module docstring; its text after the summary line (if any) is the description.
    """
    parts = (doc or "").strip().split("\n\n", 1)
    description = parts[1].strip() if len(parts) > 1 else None
    return subparsers.add_parser(name, help=COMMANDS[name], description=description)
